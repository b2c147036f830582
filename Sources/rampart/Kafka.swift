import ArgumentParser
import Foundation
import Logging
import RampartCore
import RampartEvents

/// `rampart kafka`: what an operator does by hand with Kafka topics the gateway's event
/// delivery and its consumers use.
struct KafkaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka",
        abstract: "Consume a topic with retry topics, or replay its dead-letter topic (builds with the Kafka trait).",
        subcommands: [KafkaConsume.self, KafkaReplay.self])
}

struct KafkaOptions: ParsableArguments {
    @Option(help: "Bootstrap brokers, host:port[,host:port...].") var brokers: String
    @Option(help: "The topic (its retry topics are TOPIC.retry.N, its dead-letter topic TOPIC.dlq).") var topic: String
    @Option(help: "Consumer group.") var group: String
    @Option(name: .customLong("retry-delays"), help: "Delays of the retry topics, in order, comma-separated (10s,1m).")
    var retryDelays: String = ""
    @Option(name: .customLong("property"), help: "A librdkafka setting, name=value; repeatable.")
    var properties: [String] = []

    #if Kafka
    func topics() throws -> KafkaRetryTopics {
        var delays: [Duration] = []
        for text in retryDelays.split(separator: ",") where !text.isEmpty {
            guard let delay = ConfigDuration(parsing: String(text)), delay.duration > .zero else {
                throw ValidationError("--retry-delays: \"\(text)\" is not a positive duration (10s, 1m)")
            }
            delays.append(delay.duration)
        }
        return KafkaRetryTopics(topic: topic, delays: delays)
    }
    #endif

    func settings() throws -> [String: String] {
        var settings: [String: String] = [:]
        for property in properties {
            let parts = property.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw ValidationError("--property: expected name=value, got \"\(property)\"") }
            settings[String(parts[0])] = String(parts[1])
        }
        return settings
    }
}

/// Prints each record of a topic as one JSON line and commits it once printed; with
/// `--fail-matching`, records whose value contains the text fail and go through the retry
/// topics to the dead-letter topic (to try a retry setup end to end).
struct KafkaConsume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "consume", abstract: "Print a topic's records as JSON lines, committing after each is printed.")

    @OptionGroup var kafka: KafkaOptions
    @Option(name: .customLong("fail-matching"), help: "Fail records whose value contains this text (they move to the retry topics).")
    var failMatching: String?

    func run() async throws {
        #if Kafka
        let topics = try kafka.topics()
        let producer = try KafkaProducer(brokers: kafka.brokers, properties: try kafka.settings())
        var logger = Logger(label: "rampart-kafka")
        logger.logLevel = .warning
        let consumer = KafkaRetryingConsumer(brokers: kafka.brokers, group: kafka.group, topics: topics, producer: producer,
                                             properties: try kafka.settings(), logger: logger)
        let failMatching = failMatching
        try await consumer.run { record in
            let value = String(decoding: record.value, as: UTF8.self)
            if let failMatching, value.contains(failMatching) { throw KafkaError(message: "value contains \(failMatching)") }
            var line: [String: JSONValue] = ["topic": .string(record.topic), "partition": .number(Double(record.partition)),
                                             "offset": .number(Double(record.offset)), "value": .string(value)]
            if let key = record.key { line["key"] = .string(String(decoding: key, as: UTF8.self)) }
            // Unbuffered: a line printed is a line handled, even if the process is killed next.
            FileHandle.standardOutput.write(Data((JSONValue.object(line).jsonText + "\n").utf8))
        }
        #else
        throw ValidationError("this rampart was built without Kafka (swift build --traits Kafka)")
        #endif
    }
}

/// Moves a topic's dead letters back to where they came from.
struct KafkaReplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "replay", abstract: "Move the records of TOPIC.dlq back to their original topic.")

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Stop once no dead letter came for this long.") var idle: String = "5s"

    func run() async throws {
        #if Kafka
        guard let idle = ConfigDuration(parsing: idle) else { throw ValidationError("--idle: \"\(self.idle)\" is not a duration") }
        let producer = try KafkaProducer(brokers: kafka.brokers, properties: try kafka.settings())
        defer { producer.close() }
        var logger = Logger(label: "rampart-kafka")
        logger.logLevel = .warning
        let consumer = KafkaRetryingConsumer(brokers: kafka.brokers, group: kafka.group, topics: try kafka.topics(), producer: producer,
                                             properties: try kafka.settings(), logger: logger)
        let replayed = try await consumer.replayDeadLetters(idle: idle.duration)
        print("replayed \(replayed) dead letter(s) from \(kafka.topic).dlq")
        #else
        throw ValidationError("this rampart was built without Kafka (swift build --traits Kafka)")
        #endif
    }
}
