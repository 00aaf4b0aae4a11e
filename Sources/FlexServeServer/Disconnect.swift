import Hummingbird
import Logging
import NIOCore

/// The request context: Hummingbird's basic one plus the connection, to notice clients that leave.
public struct FlexServeRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Calls `onClose` when the client closes its side of the connection (or the connection goes away).
final class DisconnectWatcher: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let onClose: @Sendable () -> Void

    init(onClose: @escaping @Sendable () -> Void) { self.onClose = onClose }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { onClose() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose()
        context.fireChannelInactive()
    }
}

/// Runs `operation` in a task that is cancelled if the client disconnects before it ends.
func cancellingOnDisconnect<T: Sendable>(_ channel: any Channel, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let task = Task { try await operation() }
    let watcher = DisconnectWatcher { task.cancel() }
    try? await channel.pipeline.addHandler(watcher, position: .first).get()
    if !channel.isActive { task.cancel() }
    defer { channel.pipeline.removeHandler(watcher, promise: nil) }
    return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
}
