#!/usr/bin/env python3
"""Confluent's own Python client on mora's topics, for the schema-registry integration tests.

  confluent_clients.py produce --brokers B --registry URL --schemas DIR --records FILE [--evolve FAMILY]
      Reads FILE (JSON lines: topic, partition, key, timestamp, family, raw = hex of the Avro body written with
      mora's current schema of the family), turns each body into a plain dict with fastavro, and produces it with
      confluent_kafka's AvroSerializer (auto-registration, TopicNameStrategy). With --evolve FAMILY, that family's
      records are written with a schema evolved from mora's: an extra top-level field with a default
      (`source_system`) and the optional `region` of DebtorProfile left out.

  confluent_clients.py consume --brokers B --registry URL --topics T1,T2,...
      Reads every record of the topics (read_committed) with AvroDeserializer and prints one JSON line per record:
      {"topic": ..., "value": {...}}.

  confluent_clients.py register --registry URL --subject S --schema FILE
      Registers a schema as a producer team would, printing its id.
"""
import argparse
import copy
import datetime
import decimal
import io
import json
import sys

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def load_schema(schemas_dir, family):
    with open(f"{schemas_dir}/{family}.avsc") as f:
        return json.load(f)


def evolved(schema):
    """An extra field with a default, and an optional field left out."""
    s = copy.deepcopy(schema)
    s["fields"].append({"name": "source_system", "type": "string", "default": "core"})
    for branch in next(f for f in s["fields"] if f["name"] == "payload")["type"]:
        if isinstance(branch, dict) and branch.get("name") == "DebtorProfile":
            branch["fields"] = [f for f in branch["fields"] if f["name"] != "region"]
    return s


def strip(value, drop):
    """Removes keys named in `drop` from every dict inside `value` (union branches are (name, dict) tuples)."""
    if isinstance(value, tuple):
        return (value[0], strip(value[1], drop))
    if isinstance(value, dict):
        return {k: strip(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [strip(v, drop) for v in value]
    return value


def produce(args):
    registry = SchemaRegistryClient({"url": args.registry})
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True})
    readers, serializers = {}, {}
    n = 0
    with open(args.records) as f:
        for line in f:
            rec = json.loads(line)
            family = rec["family"]
            if family not in readers:
                ours = load_schema(args.schemas, family)
                readers[family] = fastavro.parse_schema(ours)
                writer = evolved(ours) if family == args.evolve else ours
                serializers[family] = AvroSerializer(
                    registry, json.dumps(writer), conf={"auto.register.schemas": True}
                )
            value = fastavro.schemaless_reader(
                io.BytesIO(bytes.fromhex(rec["raw"])), readers[family], return_record_name=True
            )
            if family == args.evolve:
                value = strip(value, {"region"})
                value["source_system"] = "erp"
            payload = serializers[family](value, SerializationContext(rec["topic"], MessageField.VALUE))
            producer.produce(
                rec["topic"],
                key=rec["key"].encode(),
                value=payload,
                partition=rec["partition"],
                timestamp=rec["timestamp"],
            )
            n += 1
    left = producer.flush(30)
    if left:
        sys.exit(f"{left} records not delivered")
    print(json.dumps({"produced": n}))


def plain(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def consume(args):
    registry = SchemaRegistryClient({"url": args.registry})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": "mora-registry-test-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    assignment = []
    for topic in args.topics.split(","):
        md = consumer.list_topics(topic, timeout=10).topics[topic]
        assignment += [TopicPartition(topic, p, 0) for p in md.partitions]
    consumer.assign(assignment)
    open_parts = {(tp.topic, tp.partition) for tp in assignment}
    idle = 0
    while open_parts and idle < 200:
        msg = consumer.poll(0.1)
        if msg is None:
            idle += 1
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                open_parts.discard((msg.topic(), msg.partition()))
                continue
            sys.exit(f"consumer error: {msg.error()}")
        value = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
        print(json.dumps({"topic": msg.topic(), "value": plain(value)}))
    consumer.close()
    if open_parts:
        sys.exit(f"did not reach the end of {sorted(open_parts)}")


def register(args):
    registry = SchemaRegistryClient({"url": args.registry})
    with open(args.schema) as f:
        text = f.read()
    print(registry.register_schema(args.subject, Schema(text, "AVRO")))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("produce")
    pr.add_argument("--brokers", required=True)
    pr.add_argument("--registry", required=True)
    pr.add_argument("--schemas", required=True)
    pr.add_argument("--records", required=True)
    pr.add_argument("--evolve")
    co = sub.add_parser("consume")
    co.add_argument("--brokers", required=True)
    co.add_argument("--registry", required=True)
    co.add_argument("--topics", required=True)
    rg = sub.add_parser("register")
    rg.add_argument("--registry", required=True)
    rg.add_argument("--subject", required=True)
    rg.add_argument("--schema", required=True)
    args = p.parse_args()
    {"produce": produce, "consume": consume, "register": register}[args.cmd](args)


if __name__ == "__main__":
    main()
