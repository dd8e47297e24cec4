import Hummingbird
import NIOCore

/// A request's context: who asked (address, signed-in user) and the nonce its page's scripts carry.
struct WebContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    var user: String?
    var nonce = ""

    init(source: Source) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// Who made a change, for the log and the job's reason: "admin from 127.0.0.1".
    var requester: String {
        let from = remoteAddress?.ipAddress ?? "an unknown address"
        return "\(user ?? "the operator") from \(from)"
    }
}
