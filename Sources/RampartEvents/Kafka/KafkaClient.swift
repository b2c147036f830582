#if Kafka
import Crdkafka
import Dispatch
import Foundation
import Synchronization

/// A librdkafka error: its code and text.
public struct KafkaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t` (negative: raised by the client, positive: by the broker).
    public let code: Int32
    public let message: String

    init(_ error: rd_kafka_resp_err_t) {
        code = error.rawValue
        message = String(cString: rd_kafka_err2str(error))
    }

    public init(message: String) {
        code = -1
        self.message = message
    }

    public var description: String { message }

    /// Errors another attempt cannot fix: the message itself or the permissions are wrong.
    public var isPermanent: Bool {
        [RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, RD_KAFKA_RESP_ERR_INVALID_MSG,
         RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION,
         RD_KAFKA_RESP_ERR__INVALID_ARG].contains { $0.rawValue == code }
    }
}

/// One record: what a producer sends and a consumer receives.
public struct KafkaRecord: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    /// In order; a name may repeat.
    public var headers: [KafkaHeader]
    /// The record's timestamp, milliseconds since 1970 (-1 when the broker gave none).
    public var timestamp: Int64

    public init(topic: String, partition: Int32 = -1, offset: Int64 = -1, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = [], timestamp: Int64 = -1) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    /// The last header named `name`, as text.
    public func header(_ name: String) -> String? {
        headers.last { $0.name == name }.map { String(decoding: $0.value, as: UTF8.self) }
    }
}

public struct KafkaHeader: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]

    public init(_ name: String, _ value: [UInt8]) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ text: String) { self.init(name, Array(text.utf8)) }
}

public enum Librdkafka {
    /// The library loaded at run time, as librdkafka reports it.
    public static var version: String { String(cString: rd_kafka_version_str()) }
    /// librdkafka before 2.2.0 misreads brokers that send tagged fields in ApiVersions v3 (Tansu
    /// does) and never connects; Debian 12 ships 2.0.2.
    public static var isAtLeast2_2: Bool { rd_kafka_version() >= 0x0202_00FF }
}

/// `rd_kafka_t *`: librdkafka documents its handles as safe to use from any thread.
struct KafkaHandle: @unchecked Sendable {
    let pointer: OpaquePointer

    static func make(_ type: rd_kafka_type_t, _ properties: [String: String], configure: (OpaquePointer) -> Void = { _ in }) throws -> KafkaHandle {
        guard let conf = rd_kafka_conf_new() else { throw KafkaError(message: "rd_kafka_conf_new failed") }
        var text = [CChar](repeating: 0, count: 512)
        for (name, value) in properties.sorted(by: { $0.key < $1.key })
        where rd_kafka_conf_set(conf, name, value, &text, text.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(message: "\(name): " + Self.string(text))
        }
        configure(conf)
        guard let pointer = rd_kafka_new(type, conf, &text, text.count) else {
            rd_kafka_conf_destroy(conf)  // rd_kafka_new owns it only when it succeeds
            throw KafkaError(message: Self.string(text))
        }
        return KafkaHandle(pointer: pointer)
    }

    static func string(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// Where a delivery report lands: a one-shot result, awaited once.
final class DeliveryPromise: Sendable {
    private enum State {
        case waiting(CheckedContinuation<KafkaRecord, any Error>?)
        case done(Result<KafkaRecord, any Error>)
    }

    private let state = Mutex(State.waiting(nil))
    let record: KafkaRecord

    init(_ record: KafkaRecord) { self.record = record }

    func fulfil(_ result: Result<KafkaRecord, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<KafkaRecord, any Error>? in
            guard case .waiting(let waiter) = s else { return nil }
            s = .done(result)
            return waiter
        }
        waiter?.resume(with: result)
    }

    var value: KafkaRecord {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let done = state.withLock { s -> Result<KafkaRecord, any Error>? in
                    switch s {
                    case .done(let result): return result
                    case .waiting: s = .waiting(continuation); return nil
                    }
                }
                if let done { continuation.resume(with: done) }
            }
        }
    }
}

/// The delivery-report callback: C cannot capture, so the promise comes through the message's opaque.
private let deliveryReport: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = { _, message, _ in
    guard let message, let opaque = message.pointee._private else { return }
    let promise = Unmanaged<DeliveryPromise>.fromOpaque(opaque).takeRetainedValue()
    if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        var record = promise.record
        record.partition = message.pointee.partition
        record.offset = message.pointee.offset
        promise.fulfil(.success(record))
    } else {
        promise.fulfil(.failure(KafkaError(message.pointee.err)))
    }
}

/// A producer with idempotence on and `acks=all` (so a retried send is written once and a
/// message is acknowledged only once every in-sync replica has it). Delivery reports are served
/// by a thread of its own.
public final class KafkaProducer: Sendable {
    /// What the producer sets unless `properties` says otherwise.
    public static let defaults: [String: String] = [
        "enable.idempotence": "true", "acks": "all", "linger.ms": "5", "message.timeout.ms": "30000",
    ]

    private let handle: KafkaHandle
    private let stopped = Atomic<Bool>(false)
    private let pollerDone = DispatchSemaphore(value: 0)

    /// - Parameter properties: librdkafka settings over `defaults`; `enable.idempotence` and
    ///   `acks` cannot be weakened.
    public init(brokers: String, properties: [String: String] = [:]) throws {
        var settings = Self.defaults.merging(properties) { $1 }
        settings["bootstrap.servers"] = brokers
        settings["enable.idempotence"] = "true"
        settings["acks"] = "all"
        handle = try KafkaHandle.make(RD_KAFKA_PRODUCER, settings) { rd_kafka_conf_set_dr_msg_cb($0, deliveryReport) }
        let thread = Thread { [self] in
            while !stopped.load(ordering: .relaxed) { rd_kafka_poll(handle.pointer, 100) }
            pollerDone.signal()
        }
        thread.name = "rampart-kafka-producer"
        thread.start()
    }

    /// Sends one record and waits for the broker's acknowledgement; returns it with its partition and offset.
    @discardableResult
    public func send(_ record: KafkaRecord) async throws -> KafkaRecord {
        try await enqueue(record).value
    }

    /// Sends `records` in their order (one key's records keep it on the broker) and waits for
    /// each acknowledgement.
    public func send(_ records: [KafkaRecord]) async -> [Result<KafkaRecord, any Error>] {
        var promises: [DeliveryPromise] = []
        promises.reserveCapacity(records.count)
        for record in records { promises.append(enqueue(record)) }
        var results: [Result<KafkaRecord, any Error>] = []
        for promise in promises {
            do { results.append(.success(try await promise.value)) } catch { results.append(.failure(error)) }
        }
        return results
    }

    private func enqueue(_ record: KafkaRecord) -> DeliveryPromise {
        let promise = DeliveryPromise(record)
        let opaque = Unmanaged.passRetained(promise).toOpaque()
        guard let headers = rd_kafka_headers_new(record.headers.count) else {
            Unmanaged<DeliveryPromise>.fromOpaque(opaque).release()
            promise.fulfil(.failure(KafkaError(message: "rd_kafka_headers_new failed")))
            return promise
        }
        for header in record.headers {
            _ = header.value.withUnsafeBytes { rd_kafka_header_add(headers, header.name, -1, $0.baseAddress, $0.count) }
        }
        let partition = record.partition
        let error: KafkaError? = record.topic.withCString { topic in
            record.value.withUnsafeBytes { value in
                (record.key ?? []).withUnsafeBytes { key in
                    var fields = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: record.key == nil ? 6 : 7)
                    fields[0].vtype = RD_KAFKA_VTYPE_TOPIC
                    fields[0].u.cstr = topic
                    fields[1].vtype = RD_KAFKA_VTYPE_VALUE
                    fields[1].u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                    fields[1].u.mem.size = value.count
                    fields[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                    fields[2].u.i = RD_KAFKA_MSG_F_COPY
                    fields[3].vtype = RD_KAFKA_VTYPE_HEADERS  // librdkafka's once the message is accepted
                    fields[3].u.headers = headers
                    fields[4].vtype = RD_KAFKA_VTYPE_OPAQUE
                    fields[4].u.ptr = opaque
                    fields[5].vtype = RD_KAFKA_VTYPE_PARTITION
                    fields[5].u.i32 = partition < 0 ? RD_KAFKA_PARTITION_UA : partition
                    if record.key != nil {
                        fields[6].vtype = RD_KAFKA_VTYPE_KEY
                        fields[6].u.mem.ptr = UnsafeMutableRawPointer(mutating: key.baseAddress)
                        fields[6].u.mem.size = key.count
                    }
                    while true {
                        guard let failure = rd_kafka_produceva(handle.pointer, fields, fields.count) else { return nil }
                        let code = rd_kafka_error_code(failure)
                        rd_kafka_error_destroy(failure)
                        // The local queue is full: let delivery reports drain it, then try again.
                        if code == RD_KAFKA_RESP_ERR__QUEUE_FULL, !stopped.load(ordering: .relaxed) {
                            rd_kafka_poll(handle.pointer, 10)
                            continue
                        }
                        return KafkaError(code)
                    }
                }
            }
        }
        if let error {
            rd_kafka_headers_destroy(headers)
            Unmanaged<DeliveryPromise>.fromOpaque(opaque).release()
            promise.fulfil(.failure(error))
        }
        return promise
    }

    /// The error that made the producer unusable (an idempotent producer can hit one); nil
    /// while it works. A producer with a fatal error must be replaced.
    public var fatalError: KafkaError? {
        var text = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(handle.pointer, &text, text.count)
        return code == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(message: KafkaHandle.string(text))
    }

    /// Creates the topics that do not exist yet (`partitions` each, the broker's replication
    /// factor). A consumer subscribed to a missing topic does not create it, so the retry and
    /// dead-letter topics are made before anything consumes them.
    public func createTopics(_ names: [String], partitions: Int = 1, timeout: Duration = .seconds(10)) async throws {
        let handle = handle
        let milliseconds = Int32(timeout.components.seconds * 1000)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try Self.createTopics(names, partitions: partitions, on: handle, timeout: milliseconds) })
            }
        }
    }

    private static func createTopics(_ names: [String], partitions: Int, on handle: KafkaHandle, timeout: Int32) throws {
        var text = [CChar](repeating: 0, count: 512)
        var topics: [OpaquePointer?] = []
        defer { for topic in topics { rd_kafka_NewTopic_destroy(topic) } }
        for name in names {
            guard let topic = rd_kafka_NewTopic_new(name, Int32(partitions), -1, &text, text.count) else {
                throw KafkaError(message: "topic \(name): " + KafkaHandle.string(text))
            }
            topics.append(topic)
        }
        guard let queue = rd_kafka_queue_new(handle.pointer) else { throw KafkaError(message: "rd_kafka_queue_new failed") }
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(handle.pointer, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, timeout, &text, text.count)
        topics.withUnsafeMutableBufferPointer { rd_kafka_CreateTopics(handle.pointer, $0.baseAddress, $0.count, options, queue) }
        guard let event = rd_kafka_queue_poll(queue, timeout + 1_000) else { throw KafkaError(message: "no answer to CreateTopics within \(timeout) ms") }
        defer { rd_kafka_event_destroy(event) }
        if rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(rd_kafka_event_error(event)) }
        guard let result = rd_kafka_event_CreateTopics_result(event) else { throw KafkaError(message: "CreateTopics: unexpected answer") }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
        for index in 0..<count {
            let error = rd_kafka_topic_result_error(results[index])
            if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                throw KafkaError(message: "topic \(String(cString: rd_kafka_topic_result_name(results[index]))): " + KafkaError(error).message)
            }
        }
    }

    /// Waits (blocking this thread) up to `timeout` for what is queued to be acknowledged,
    /// stops the report thread and frees the handle. Call once, at the end.
    public func close(timeout: Duration = .seconds(10)) {
        _ = rd_kafka_flush(handle.pointer, Int32(timeout.components.seconds * 1000))
        stopped.store(true, ordering: .relaxed)
        pollerDone.wait()
        rd_kafka_destroy(handle.pointer)
    }
}

/// A consumer in a group with manual commits: offsets are stored only for records the caller
/// says are done (`store`) and committed by `commit`, so a crash never skips a record. The
/// blocking librdkafka calls run on a queue of its own, never on Swift's cooperative threads.
public final class KafkaConsumer: Sendable {
    /// What the consumer sets unless `properties` says otherwise.
    public static let defaults: [String: String] = [
        "auto.offset.reset": "earliest", "session.timeout.ms": "10000", "heartbeat.interval.ms": "1000",
        "max.poll.interval.ms": "60000",
    ]

    private let handle: KafkaHandle
    private let queue: DispatchQueue
    private let closed = Atomic<Bool>(false)
    public let group: String

    public init(brokers: String, group: String, topics: [String], properties: [String: String] = [:]) throws {
        var settings = Self.defaults.merging(properties) { $1 }
        settings["bootstrap.servers"] = brokers
        settings["group.id"] = group
        settings["enable.auto.commit"] = "false"
        settings["enable.auto.offset.store"] = "false"
        handle = try KafkaHandle.make(RD_KAFKA_CONSUMER, settings)
        self.group = group
        queue = DispatchQueue(label: "rampart-kafka-consumer-\(group)")
        rd_kafka_poll_set_consumer(handle.pointer)
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let error = rd_kafka_subscribe(handle.pointer, list)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            rd_kafka_destroy(handle.pointer)
            throw KafkaError(error)
        }
    }

    private func onQueue<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result(catching: work)) }
        }
    }

    /// The next record, or nil when none came within `timeout` (or the consumer is closed).
    public func poll(timeout: Duration = .milliseconds(200)) async throws -> KafkaRecord? {
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return try await onQueue { [self] in
            guard !closed.load(ordering: .relaxed) else { return nil }
            guard let message = rd_kafka_consumer_poll(handle.pointer, milliseconds) else { return nil }
            defer { rd_kafka_message_destroy(message) }
            return try Self.record(message)
        }
    }

    static func record(_ message: UnsafeMutablePointer<rd_kafka_message_t>) throws -> KafkaRecord? {
        let m = message.pointee
        if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return nil }
        guard m.err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(m.err) }
        var headers: [KafkaHeader] = []
        var list: OpaquePointer?
        if rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
            var index = 0
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR, let name {
                headers.append(KafkaHeader(String(cString: name), value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []))
                index += 1
            }
        }
        var kind = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &kind)
        return KafkaRecord(topic: String(cString: rd_kafka_topic_name(m.rkt)), partition: m.partition, offset: m.offset,
                           key: m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) },
                           value: m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? [],
                           headers: headers, timestamp: timestamp)
    }

    /// Whether the group has given this consumer partitions yet (a join takes a few seconds).
    public var isAssigned: Bool {
        guard !closed.load(ordering: .relaxed) else { return false }
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle.pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return false }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return list.pointee.cnt > 0
    }

    /// Marks `record` done: its offset (plus one) is committed by the next `commit`.
    public func store(_ record: KafkaRecord) throws {
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, record.topic, record.partition).pointee.offset = record.offset + 1
        let error = rd_kafka_offsets_store(handle.pointer, list)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(error) }
    }

    /// Commits the stored offsets and waits for the broker.
    public func commit() async throws {
        let handle = handle
        try await onQueue {
            let error = rd_kafka_commit(handle.pointer, nil, 0)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR || error == RD_KAFKA_RESP_ERR__NO_OFFSET else { throw KafkaError(error) }
        }
    }

    /// Leaves the group (without committing anything not committed) and frees the handle.
    public func close() async {
        guard !closed.exchange(true, ordering: .relaxed) else { return }
        let handle = handle
        _ = try? await onQueue {
            _ = rd_kafka_consumer_close(handle.pointer)
            rd_kafka_destroy(handle.pointer)
        }
    }
}
#endif
