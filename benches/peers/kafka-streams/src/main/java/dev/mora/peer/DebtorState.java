package dev.mora.peer;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

import org.apache.avro.generic.GenericRecord;

/** A debtor's open obligations (amounts in ten-thousandths, as the Avro decimals carry them) and aging bucket. */
final class DebtorState {
    static final String[] BUCKETS = {"current", "1-30", "31-60", "61-90", "90+"};

    /** One open obligation. */
    static final class Obligation {
        String id;
        long outstanding;
        int dueDay;

        Obligation(String id, long outstanding, int dueDay) {
            this.id = id;
            this.outstanding = outstanding;
            this.dueDay = dueDay;
        }
    }

    final List<Obligation> open = new ArrayList<>(2);
    int bucket;

    static int bucketOf(int dpd) {
        if (dpd <= 0) {
            return 0;
        }
        if (dpd <= 30) {
            return 1;
        }
        if (dpd <= 60) {
            return 2;
        }
        return dpd <= 90 ? 3 : 4;
    }

    int daysPastDue(int today) {
        int oldest = Integer.MAX_VALUE;
        for (Obligation o : open) {
            if (o.outstanding > 0 && o.dueDay < today) {
                oldest = Math.min(oldest, o.dueDay);
            }
        }
        return oldest == Integer.MAX_VALUE ? 0 : today - oldest;
    }

    /** Amount range of the outstanding total: under 1 000, under 10 000, or more. */
    String segment() {
        long total = 0;
        for (Obligation o : open) {
            total += o.outstanding;
        }
        String range = total < 1_000_0000L ? "low" : total < 10_000_0000L ? "mid" : "high";
        return BUCKETS[bucket] + "/" + range;
    }

    void apply(GenericRecord p) {
        switch (p.getSchema().getName()) {
            case "ObligationOpened" -> open.add(new Obligation(
                    p.get("obligation_id").toString(), units(p.get("amount")), (Integer) p.get("due_date")));
            case "ObligationUpdated" -> {
                Obligation o = find(p.get("obligation_id").toString());
                if (o != null) {
                    if (p.get("amount") != null) {
                        o.outstanding = units(p.get("amount"));
                    }
                    if (p.get("due_date") != null) {
                        o.dueDay = (Integer) p.get("due_date");
                    }
                }
            }
            case "PaymentPlanAgreed" -> {
                open.clear();
                String plan = p.get("plan_id").toString();
                int i = 0;
                for (Object item : (List<?>) p.get("installments")) {
                    GenericRecord inst = (GenericRecord) item;
                    open.add(new Obligation(plan + "#" + i++, units(inst.get("amount")), (Integer) inst.get("due_date")));
                }
            }
            case "PaymentReceived", "CreditNote" -> pay(p.get("obligation_id"), units(p.get("amount")));
            default -> { } // reversals and other records are outside the subset
        }
        open.removeIf(o -> o.outstanding <= 0);
    }

    private void pay(Object target, long amount) {
        if (target != null) {
            Obligation o = find(target.toString());
            if (o != null) {
                long paid = Math.min(amount, o.outstanding);
                o.outstanding -= paid;
                amount -= paid;
            }
        }
        open.sort(Comparator.comparingInt(o -> o.dueDay));
        for (Obligation o : open) {
            if (amount <= 0) {
                break;
            }
            long paid = Math.min(amount, o.outstanding);
            o.outstanding -= paid;
            amount -= paid;
        }
    }

    private Obligation find(String id) {
        for (Obligation o : open) {
            if (o.id.equals(id)) {
                return o;
            }
        }
        return null;
    }

    private static long units(Object decimal) {
        ByteBuffer b = ((ByteBuffer) decimal).duplicate();
        byte[] bytes = new byte[b.remaining()];
        b.get(bytes);
        return new BigInteger(bytes).longValue();
    }

    byte[] encode() {
        try {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream(16 + open.size() * 32);
            DataOutputStream out = new DataOutputStream(bytes);
            out.writeByte(bucket);
            out.writeShort(open.size());
            for (Obligation o : open) {
                out.writeUTF(o.id);
                out.writeLong(o.outstanding);
                out.writeInt(o.dueDay);
            }
            return bytes.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static DebtorState decode(byte[] bytes) {
        try {
            DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes));
            DebtorState s = new DebtorState();
            s.bucket = in.readByte();
            int n = in.readShort();
            for (int i = 0; i < n; i++) {
                s.open.add(new Obligation(in.readUTF(), in.readLong(), in.readInt()));
            }
            return s;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
