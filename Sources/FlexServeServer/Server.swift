import FlexServe
import FlexServeTokenizers
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// How the HTTP server runs. Engine limits are repeated here because requests are checked
/// against them before they reach the engine (so they get a 400, not an error mid-stream).
public struct ServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8000
    /// The name clients pass as `model`; the model path and the name given on the command line are accepted too.
    public var modelName: String
    public var modelAliases: [String] = []
    /// Generation requests admitted at once beyond the running batch; more get 429.
    public var maxQueue = 256
    public var maxRequestsPerBatch = 16
    /// The engine's `maxSeqLength`: prompt plus generated tokens.
    public var maxSequenceLength = 1024
    public var maxBodyBytes = 4 << 20
    /// Overrides the model's chat template (Jinja source).
    public var chatTemplate: String?
    /// Completions without `max_tokens` generate this many tokens (OpenAI's legacy default is 16).
    public var defaultCompletionMaxTokens = 16
    /// A streaming response with nothing to send writes an SSE comment this often (it notices gone clients).
    public var heartbeatSeconds = 1.0
    /// How long SIGTERM waits for in-flight requests before giving up.
    public var drainTimeoutSeconds = 300.0

    public init(modelName: String) { self.modelName = modelName }

    /// The most requests admitted at once.
    public var admissionLimit: Int { maxRequestsPerBatch + maxQueue }
}

/// One admitted generation request; gives its slot back exactly once (also if dropped unused).
public final class Ticket: @unchecked Sendable {
    private let lock = NSLock()
    private var released = false
    private let onRelease: () -> Void

    init(onRelease: @escaping () -> Void) { self.onRelease = onRelease }

    public func release() {
        lock.lock()
        let first = !released
        released = true
        lock.unlock()
        if first { onRelease() }
    }

    deinit { release() }
}

/// The server's shared state: the model, admission counting, and the counters behind `/metrics`.
public final class ServerState: @unchecked Sendable {
    public let llm: LLM
    public let options: ServerOptions
    let template: ChatTemplate?
    let templateError: String?
    let bosToken: String
    let eosToken: String
    let created = Int(Date().timeIntervalSince1970)
    private let lock = NSLock()
    private var inFlight = 0
    private var draining = false
    private var counters = ServerCounters()

    public init(llm: LLM, options: ServerOptions) {
        self.llm = llm
        self.options = options
        let tok = llm.tokenizer
        bosToken = tok.bosTokenID.flatMap { tok.token($0) } ?? ""
        eosToken = tok.eosTokenID.flatMap { tok.token($0) } ?? ""
        var template: ChatTemplate?
        var templateError: String?
        if let source = options.chatTemplate ?? tok.chatTemplate {
            do { template = try ChatTemplate(source) } catch { templateError = "The model's chat template does not parse: \(error)" }
        } else {
            templateError = "The model `\(options.modelName)` has no chat template; use /v1/completions or start the server with --chat-template FILE."
        }
        self.template = template
        self.templateError = templateError
    }

    public var isDraining: Bool { lock.lock(); defer { lock.unlock() }; return draining }

    public func beginDraining() { lock.lock(); draining = true; lock.unlock() }

    public var inFlightCount: Int { lock.lock(); defer { lock.unlock() }; return inFlight }

    /// Admits a generation request or refuses it (503 while draining, 429 when full).
    public func admit() throws -> Ticket {
        lock.lock()
        defer { lock.unlock() }
        if draining { counters.rejected["draining", default: 0] += 1; throw APIError.draining }
        guard inFlight < options.admissionLimit else {
            counters.rejected["queue_full", default: 0] += 1
            throw APIError.overloaded(limit: options.admissionLimit)
        }
        inFlight += 1
        return Ticket { [weak self] in
            guard let self else { return }
            self.lock.lock(); self.inFlight -= 1; self.lock.unlock()
        }
    }

    func record(_ result: GenerationResult) {
        lock.lock(); counters.record(result); lock.unlock()
    }

    func countHTTP(endpoint: String, status: Int) {
        lock.lock(); counters.httpRequests["\(endpoint)|\(status)", default: 0] += 1; lock.unlock()
    }

    public func metricsText() -> String {
        let engine = llm.metrics
        lock.lock()
        let c = counters
        let n = inFlight
        let d = draining
        lock.unlock()
        return renderMetrics(engine: engine, server: c, inFlight: n, draining: d, model: options.modelName)
    }

    /// Whether `name` names the served model.
    func servesModel(_ name: String) -> Bool {
        name == options.modelName || options.modelAliases.contains(name)
    }
}

/// Maps errors to OpenAI error objects and counts responses by endpoint and status.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let state: ServerState

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let endpoint = Self.endpoint(request.uri.path)
        do {
            let response = try await next(request, context)
            state.countHTTP(endpoint: endpoint, status: response.status.code)
            return response
        } catch {
            let apiError: APIError
            switch error {
            case let e as APIError: apiError = e
            case let e as HTTPError where e.status == .notFound: apiError = .notFound(request.uri.path)
            case let e as HTTPError where e.status == .methodNotAllowed: apiError = .methodNotAllowed("\(request.method)", request.uri.path)
            case let e as HTTPError where e.status == .contentTooLarge: apiError = .tooLarge(limit: state.options.maxBodyBytes)
            case let e as HTTPError:
                apiError = APIError(status: e.status.code, message: e.body ?? e.status.reasonPhrase,
                                    type: e.status.code >= 500 ? "server_error" : "invalid_request_error")
            case is NIOTooManyBytesError: apiError = .tooLarge(limit: state.options.maxBodyBytes)
            case is CancellationError: apiError = APIError(status: 499, message: "Client closed the request.", type: "invalid_request_error", code: "client_closed")
            default: apiError = .from(engine: error)
            }
            state.countHTTP(endpoint: endpoint, status: apiError.status)
            if apiError.status >= 500 {
                context.logger.error("\(request.method) \(request.uri.path): \(apiError.message)")
            }
            return apiError.response
        }
    }

    static func endpoint(_ path: String) -> String {
        let known = ["/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/generate"]
        if known.contains(path) { return path }
        if path.hasPrefix("/v1/models/") { return "/v1/models/{id}" }
        return "other"
    }
}

/// Flips the server into draining mode when a graceful shutdown (SIGTERM/SIGINT) starts. The
/// service group shuts services down in reverse order, so this runs before the HTTP server quiesces.
struct DrainWatcher: Service {
    let state: ServerState

    func run() async throws {
        try? await gracefulShutdown()
        state.beginDraining()
    }
}

/// The OpenAI-compatible HTTP server over one `LLM`.
public struct FlexServeHTTPServer: Sendable {
    public let state: ServerState

    public init(llm: LLM, options: ServerOptions) {
        state = ServerState(llm: llm, options: options)
    }

    public func makeRouter() -> Router<FlexServeRequestContext> {
        let router = Router(context: FlexServeRequestContext.self)
        router.add(middleware: OpenAIErrorMiddleware(state: state))
        let handlers = Handlers(state: state)
        router.get("/health") { _, _ in handlers.health() }
        router.get("/metrics") { _, _ in handlers.metrics() }
        router.get("/v1/models") { _, _ in handlers.models() }
        router.get("/v1/models/:id") { _, context in try handlers.model(context.parameters.require("id")) }
        router.post("/v1/completions") { request, context in try await handlers.completions(request, channel: context.channel) }
        router.post("/v1/chat/completions") { request, context in try await handlers.chat(request, channel: context.channel) }
        router.post("/generate") { request, context in try await handlers.generate(request, channel: context.channel) }
        return router
    }

    /// Serves until SIGTERM or SIGINT, then stops accepting requests, finishes the in-flight ones and returns.
    /// `onRunning` gets the bound port (useful with port 0).
    public func run(logger: Logger? = nil, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        var log = logger ?? Logger(label: "flexserve")
        if logger == nil { log.logLevel = .warning }
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(state.options.host, port: state.options.port), serverName: "FlexServe"),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? state.options.port) },
            logger: log)
        var config = ServiceGroupConfiguration(
            services: [.init(service: app), .init(service: DrainWatcher(state: state))],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: log)
        config.maximumGracefulShutdownDuration = .milliseconds(Int64(state.options.drainTimeoutSeconds * 1000))
        try await ServiceGroup(configuration: config).run()
    }
}
