// Drives a broker with kafkajs, as a Node.js application would, for the
// tests: reads one JSON scenario on stdin, writes one JSON result on stdout.
//
// Scenario: {"bootstrap": "host:port", "create": [kafkajs ITopicConfig...],
//            "produce": {"topic", "messages": [{"key", "value"}], "gzip": bool},
//            "consume": {"topic", "count", "group"}, "describe": [topic names]}
// Result:   {"created", "metadata", "produced", "consumed", "configs"}
const { Kafka, CompressionTypes, logLevel } = require("kafkajs");

async function main(scenario) {
  const kafka = new Kafka({ clientId: "kafscale-tests", brokers: [scenario.bootstrap], logLevel: logLevel.NOTHING });
  const result = {};
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (scenario.create) {
      result.created = await admin.createTopics({ topics: scenario.create, waitForLeaders: true });
      const names = scenario.create.map((topic) => topic.topic);
      result.metadata = (await admin.fetchTopicMetadata({ topics: names })).topics;
    }
    if (scenario.describe) {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: scenario.describe.map((name) => ({ type: 2, name })),
      });
      result.configs = Object.fromEntries(described.resources.map((resource) => [
        resource.resourceName,
        Object.fromEntries(resource.configEntries.map((entry) => [entry.configName, entry.configValue])),
      ]));
    }
  } finally {
    await admin.disconnect();
  }
  if (scenario.produce) {
    const producer = kafka.producer();
    await producer.connect();
    try {
      result.produced = await producer.send({
        topic: scenario.produce.topic,
        messages: scenario.produce.messages,
        compression: scenario.produce.gzip ? CompressionTypes.GZIP : CompressionTypes.None,
        acks: -1,
      });
    } finally {
      await producer.disconnect();
    }
  }
  if (scenario.consume) {
    result.consumed = await consume(kafka, scenario.consume);
  }
  return result;
}

async function consume(kafka, { topic, count, group }) {
  const consumer = kafka.consumer({ groupId: group });
  await consumer.connect();
  const consumed = [];
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`consumed ${consumed.length} of ${count}`)), 30000);
      consumer.run({
        eachMessage: async ({ partition, message }) => {
          consumed.push({ partition, offset: message.offset, timestamp: message.timestamp,
                          key: message.key && message.key.toString(), value: message.value.toString() });
          if (consumed.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return consumed;
}

let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  main(JSON.parse(input)).then(
    (result) => { process.stdout.write(JSON.stringify(result)); },
    (error) => { process.stdout.write(JSON.stringify({ error: String(error && error.stack || error) })); process.exitCode = 1; },
  );
});
