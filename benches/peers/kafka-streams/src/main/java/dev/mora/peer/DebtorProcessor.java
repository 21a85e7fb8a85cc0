package dev.mora.peer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;

/** Per debtor: apply obligations and payments, re-bucket, emit on a bucket change. */
final class DebtorProcessor implements Processor<String, byte[], String, String> {
    static final String STORE = "debtors";

    private final String inputPrefix;
    private final GenericDatumReader<GenericRecord> obligations = reader("obligation.avsc");
    private final GenericDatumReader<GenericRecord> payments = reader("payment.avsc");
    private BinaryDecoder decoder;
    private ProcessorContext<String, String> context;
    private KeyValueStore<String, byte[]> store;

    DebtorProcessor(String inputPrefix) {
        this.inputPrefix = inputPrefix;
    }

    private static GenericDatumReader<GenericRecord> reader(String file) {
        try (InputStream in = DebtorProcessor.class.getResourceAsStream("/avro/" + file)) {
            if (in == null) {
                throw new IllegalStateException("schema " + file + " missing from the build");
            }
            return new GenericDatumReader<>(new Schema.Parser().parse(in));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void init(ProcessorContext<String, String> context) {
        this.context = context;
        this.store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<String, byte[]> record) {
        String topic = context.recordMetadata().map(m -> m.topic()).orElse("");
        String family = topic.startsWith(inputPrefix) ? topic.substring(inputPrefix.length()) : topic;
        GenericDatumReader<GenericRecord> reader = switch (family) {
            case "obligation" -> obligations;
            case "payment" -> payments;
            default -> null;
        };
        byte[] bytes = record.value();
        if (reader == null || record.key() == null || bytes == null || bytes.length < 6 || bytes[0] != 0) {
            return; // not in the subset (or not a Confluent-framed record mora would read either)
        }
        GenericRecord envelope;
        try {
            decoder = DecoderFactory.get().binaryDecoder(bytes, 5, bytes.length - 5, decoder);
            envelope = reader.read(null, decoder);
        } catch (IOException | RuntimeException e) {
            return; // mora dead-letters such records; the peer skips them
        }
        long at = (Long) envelope.get("occurred_at");
        GenericRecord payload = (GenericRecord) envelope.get("payload");
        byte[] stored = store.get(record.key());
        DebtorState state = stored == null ? new DebtorState() : DebtorState.decode(stored);
        int before = state.bucket;
        boolean known = stored != null;
        state.apply(payload);
        int day = (int) Math.floorDiv(at, 86_400_000L);
        state.bucket = DebtorState.bucketOf(state.daysPastDue(day));
        store.put(record.key(), state.encode());
        if (state.bucket != before && (known || state.bucket != 0)) {
            String json = "{\"debtor_id\":\"" + record.key() + "\",\"at\":" + at + ",\"bucket\":\""
                    + DebtorState.BUCKETS[state.bucket] + "\",\"segment\":\"" + state.segment() + "\"}";
            context.forward(record.withValue(json));
        }
    }
}
