import FanoutCore
import FanoutStore
import Logging
import MariaDB

/// The two further database connections of a tick whose companies' batches overlap, opened when
/// a tick first has two companies to serve and kept for the run (`--until-done` ticks and a
/// worker's rounds reuse them).
final class LaneStores {
    private let database: ConnectionConfiguration
    private let kind: JobKind
    private let logger: Logger
    private var connections: [Connection] = []
    private var stores: [any JobStore] = []

    init(database: ConnectionConfiguration, kind: JobKind, logger: Logger) {
        self.database = database
        self.kind = kind
        self.logger = logger
    }

    func open() throws -> [any JobStore] {
        if stores.isEmpty {
            var opened: [Connection] = []
            do {
                for _ in 0..<2 { opened.append(try Connection(database)) }
            } catch {
                opened.forEach { $0.close() }
                throw error
            }
            connections = opened
            stores = opened.map { MariaDBJobStore(connection: $0, kind: kind, logger: logger) }
        }
        return stores
    }

    func close() {
        connections.forEach { $0.close() }
    }
}
