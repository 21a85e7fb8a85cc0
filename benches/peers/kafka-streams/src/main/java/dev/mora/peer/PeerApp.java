package dev.mora.peer;

import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.Stores;

/**
 * The peer: mora's core subset as an idiomatic Kafka Streams application. It reads the same co-partitioned input
 * topics, keeps each debtor's open obligations in a RocksDB store (changelogged), applies obligations and payments,
 * computes days past due and the aging bucket at each event's time, segments by bucket and amount range, and emits
 * an action when a debtor's bucket changes.
 *
 * <p>Arguments: {@code --brokers B --input-prefix P --output TOPIC --application-id ID
 * --guarantee exactly_once_v2|at_least_once --state-dir DIR [--threads N]}.
 */
public final class PeerApp {
    /** The input families mora reads (its clock topic is mora's own and is left out). */
    static final String[] FAMILIES = {
        "account", "obligation", "payment", "promise", "dispute", "contact_outcome"
    };

    private PeerApp() {}

    public static void main(String[] args) throws InterruptedException {
        Args a = Args.parse(args);
        List<String> topics = new ArrayList<>();
        for (String f : FAMILIES) {
            topics.add(a.inputPrefix + f);
        }

        StreamsBuilder builder = new StreamsBuilder();
        builder.addStateStore(Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(DebtorProcessor.STORE), Serdes.String(), Serdes.ByteArray()));
        builder.stream(topics, Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .process(() -> new DebtorProcessor(a.inputPrefix), DebtorProcessor.STORE)
                .to(a.output, Produced.with(Serdes.String(), Serdes.String()));

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.applicationId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.brokers);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, a.guarantee);
        p.put(StreamsConfig.STATE_DIR_CONFIG, a.stateDir);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, a.threads);
        // Exactly-once commits every 100 ms by default; at-least-once every 30 s, which only delays offset commits
        // (the harness follows progress through them), so both commit at least every second here.
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, a.guarantee.equals("at_least_once") ? 1000 : 100);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // Streams sets linger.ms = 100 for its producers; mora sends at once, so the peer does too.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);

        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("peer state " + now);
            System.out.flush();
            if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) {
                stopped.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
    }

    /** Command-line arguments. */
    static final class Args {
        String brokers = "127.0.0.1:9092";
        String inputPrefix = "mora.in.";
        String output = "peer.actions";
        String applicationId = "mora-peer";
        String guarantee = "exactly_once_v2";
        String stateDir = "/tmp/mora-peer";
        int threads = 2;

        static Args parse(String[] args) {
            Args a = new Args();
            for (int i = 0; i + 1 < args.length; i += 2) {
                String v = args[i + 1];
                switch (args[i]) {
                    case "--brokers" -> a.brokers = v;
                    case "--input-prefix" -> a.inputPrefix = v;
                    case "--output" -> a.output = v;
                    case "--application-id" -> a.applicationId = v;
                    case "--guarantee" -> a.guarantee = v;
                    case "--state-dir" -> a.stateDir = v;
                    case "--threads" -> a.threads = Integer.parseInt(v);
                    default -> throw new IllegalArgumentException("unknown argument " + args[i]);
                }
            }
            if (!a.guarantee.equals("exactly_once_v2") && !a.guarantee.equals("at_least_once")) {
                throw new IllegalArgumentException("--guarantee: exactly_once_v2 or at_least_once");
            }
            return a;
        }
    }
}
