import FlexServe
import Foundation
import Hummingbird

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with an HTTP status.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status) \(type): \(message)" }

    public static func badRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    public static func wrongType(_ param: String, expected: String, got: JSON) -> APIError {
        badRequest("'\(param)' must be \(expected), got \(got.typeName)", param: param, code: "invalid_type")
    }

    public static func modelNotFound(_ name: String) -> APIError {
        APIError(status: 404, message: "The model `\(name)` does not exist or you do not have access to it.",
                 type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    public static func notFound(_ path: String) -> APIError {
        APIError(status: 404, message: "Unknown request URL: \(path). Please check the URL for typos.",
                 type: "invalid_request_error", code: "unknown_url")
    }

    public static func methodNotAllowed(_ method: String, _ path: String) -> APIError {
        APIError(status: 405, message: "Method \(method) is not allowed for \(path).",
                 type: "invalid_request_error", code: "method_not_allowed")
    }

    public static func tooLarge(limit: Int) -> APIError {
        APIError(status: 413, message: "Request body is larger than the server's limit of \(limit) bytes.",
                 type: "invalid_request_error", code: "request_too_large")
    }

    public static func overloaded(limit: Int) -> APIError {
        APIError(status: 429, message: "The server is busy: \(limit) requests are already running or queued. Please retry later.",
                 type: "rate_limit_error", code: "rate_limit_exceeded")
    }

    public static let draining = APIError(status: 503, message: "The server is shutting down and accepts no new requests.",
                                          type: "service_unavailable", code: "shutting_down")

    public static func internalError(_ message: String) -> APIError {
        APIError(status: 500, message: message, type: "server_error", code: "internal_error")
    }

    /// Maps an engine error: bad settings and prompts are the client's (400), the rest the server's.
    public static func from(engine error: Error, promptParam: String = "prompt") -> APIError {
        if let e = error as? APIError { return e }
        guard let g = error as? GenerationError else { return internalError("The engine failed: \(error)") }
        switch g {
        case .invalidSetting(let s): return badRequest("Invalid request: \(s)")
        case let .promptTooLong(tokens, limit):
            return badRequest("This model's maximum context length is \(limit + 1) tokens. However, your prompt has \(tokens) tokens. Please reduce the length of the prompt.",
                              param: promptParam, code: "context_length_exceeded")
        case .emptyPrompt: return badRequest("The prompt is empty (it has no tokens).", param: promptParam)
        case .notCompiled: return APIError(status: 503, message: "The model is not ready.", type: "service_unavailable", code: "not_ready")
        case .cancelled: return APIError(status: 503, message: "The request was cancelled by the server.", type: "service_unavailable", code: "cancelled")
        case .engineFailure(let s): return internalError("The engine failed: \(s)")
        }
    }

    var json: Out {
        .object([("error", .object([
            ("message", .string(message)),
            ("type", .string(type)),
            ("param", param.map(Out.string) ?? .null),
            ("code", code.map(Out.string) ?? .null),
        ]))])
    }

    public var body: String { json.text }

    var response: Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if status == 429 || status == 503 { headers[.retryAfter] = "1" }
        return Response(status: .init(code: status), headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: body + "\n")))
    }
}
