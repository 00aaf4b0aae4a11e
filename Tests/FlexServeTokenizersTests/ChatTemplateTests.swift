import XCTest
@testable import FlexServeTokenizers

/// Renders real HuggingFace chat templates and compares with jinja2's output, byte for byte.
/// The references come from tools/fixtures/make_chat_template_refs.py (run once; no Python needed here).
final class ChatTemplateTests: XCTestCase {
    static let fixtures: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("Tests/Fixtures/chat-templates")
    }()

    static let reference: [String: JinjaValue] = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("reference.json"))
        var parser = ChatTemplateJSONParser(String(decoding: data, as: UTF8.self))
        guard case .dict(let d) = try! parser.parse() else { fatalError("reference.json is not an object") }
        var out: [String: JinjaValue] = [:]
        for (k, v) in d.entries { out[k.str] = v }
        return out
    }()

    private func template(_ file: String) throws -> ChatTemplate {
        let text = try String(contentsOf: Self.fixtures.appendingPathComponent(file), encoding: .utf8)
        return try ChatTemplate(text)
    }

    func testReferenceRenderings() throws {
        guard case .list(let cases)? = Self.reference["cases"] else { return XCTFail("no cases") }
        XCTAssertGreaterThan(cases.count, 100)
        var templates: [String: ChatTemplate] = [:]
        var passed = 0
        for c in cases {
            guard case .dict(let d) = c, case .list(let msgs)? = d["messages"] else { return XCTFail("bad case") }
            let file = d["file"]!.str
            let label = "\(d["template"]!.str) / \(d["conversation"]!.str) / add_generation_prompt=\(d["add_generation_prompt"]!.truthy)"
            let tpl: ChatTemplate
            if let t = templates[file] { tpl = t } else {
                do { tpl = try template(file) } catch { XCTFail("\(file): parse failed: \(error)"); continue }
                templates[file] = tpl
            }
            let messages = msgs.map { m -> ChatMessage in
                guard case .dict(let md) = m else { return ChatMessage(role: "", content: "") }
                return ChatMessage(role: md["role"]!.str, content: md["content"]!.str)
            }
            do {
                let out = try tpl.render(messages: messages, addGenerationPrompt: d["add_generation_prompt"]!.truthy,
                                         bosToken: d["bos_token"]!.str, eosToken: d["eos_token"]!.str)
                if let expected = d["output"] {
                    XCTAssertEqual(Array(out.utf8), Array(expected.str.utf8), "\(label)\n got: \(out.debugDescription)\nwant: \(expected.str.debugDescription)")
                    if Array(out.utf8) == Array(expected.str.utf8) { passed += 1 }
                } else {
                    XCTFail("\(label): expected an exception '\(d["error"]!.str)', got output \(out.debugDescription)")
                }
            } catch let error as ChatTemplateError {
                if let expected = d["error"] {
                    if d["error_type"]?.str == "TemplateError" {
                        // raise_exception(msg): same kind and message as transformers
                        XCTAssertEqual(error.kind, .raised, label)
                        XCTAssertEqual(error.message, expected.str, label)
                    } else {
                        // a Python runtime error (e.g. iterating None): a render error with the same message
                        XCTAssertEqual(error.kind, .render, label)
                        XCTAssertTrue(error.message.contains(expected.str), "\(label): \(error) vs \(expected.str)")
                    }
                    passed += 1
                } else {
                    XCTFail("\(label): unexpected error \(error)")
                }
            }
        }
        XCTAssertEqual(passed, cases.count)
    }

    func testFeatureReferences() throws {
        guard case .dict(let features)? = Self.reference["features"], case .dict(let ctxDict)? = features["context"],
              case .list(let cases)? = features["cases"] else { return XCTFail("no features") }
        var context: [String: JinjaValue] = [:]
        for (k, v) in ctxDict.entries { context[k.str] = v }
        for c in cases {
            guard case .dict(let d) = c else { continue }
            let name = d["name"]!.str
            do {
                let out = try ChatTemplate(d["template"]!.str).render(context: context)
                XCTAssertEqual(out, d["output"]?.str, "feature \(name)")
            } catch {
                XCTFail("feature \(name): \(error)")
            }
        }
    }

    // MARK: errors

    private func syntaxError(_ source: String, file: StaticString = #filePath, line: UInt = #line) -> ChatTemplateError? {
        do {
            _ = try ChatTemplate(source)
            XCTFail("expected a syntax error for \(source.debugDescription)", file: file, line: line)
            return nil
        } catch let e as ChatTemplateError {
            XCTAssertEqual(e.kind, .syntax, file: file, line: line)
            return e
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
            return nil
        }
    }

    func testUnclosedBlockNamesTheBlockAndExpectedTags() throws {
        let e = try XCTUnwrap(syntaxError("{% for message in messages %}\n{{ message.content }}\n"))
        XCTAssertTrue(e.message.contains("'endfor'"), e.description)
        XCTAssertTrue(e.message.contains("'for'"), e.description)
        XCTAssertNotNil(e.line)
        XCTAssertTrue(e.description.contains("line"), e.description)
    }

    func testUnclosedIfReportsPosition() throws {
        let e = try XCTUnwrap(syntaxError("hello\n  {% if add_generation_prompt %}x"))
        XCTAssertTrue(e.message.contains("'endif'"), e.description)
        XCTAssertTrue(e.message.contains("line 2, column 3"), e.description)
    }

    func testUnclosedPrintTag() throws {
        let e = try XCTUnwrap(syntaxError("abc\n{{ bos_token "))
        XCTAssertTrue(e.message.contains("end of print statement"), e.description)
        XCTAssertEqual(e.line, 2)
    }

    func testUnclosedCommentAndString() throws {
        let c = try XCTUnwrap(syntaxError("a {# never closed"))
        XCTAssertTrue(c.message.contains("comment"), c.description)
        let s = try XCTUnwrap(syntaxError("{{ 'abc }}"))
        XCTAssertTrue(s.message.contains("string"), s.description)
    }

    func testUnknownFilterNamesFilterAndPosition() throws {
        let e = try XCTUnwrap(syntaxError("{{ bos_token }}\n{{ messages | frobnicate }}"))
        XCTAssertTrue(e.message.contains("No filter named 'frobnicate'"), e.description)
        XCTAssertEqual(e.line, 2)
        XCTAssertEqual(e.column, 15)
        XCTAssertTrue(e.description.contains("line 2, column 15"), e.description)
    }

    func testUnknownTestAndTag() throws {
        let t = try XCTUnwrap(syntaxError("{{ x is frob }}"))
        XCTAssertTrue(t.message.contains("No test named 'frob'"), t.description)
        // As in Jinja, inside {% if %} an unknown filter/test is only an error if it is actually used.
        let soft = try ChatTemplate("{% if add_generation_prompt %}{{ bos_token | frob }}{% endif %}ok")
        XCTAssertEqual(try soft.render(messages: [], addGenerationPrompt: false, bosToken: "", eosToken: ""), "ok")
        XCTAssertThrowsError(try soft.render(messages: [], addGenerationPrompt: true, bosToken: "", eosToken: "")) { error in
            let e = error as! ChatTemplateError
            XCTAssertEqual(e.kind, .render)
            XCTAssertTrue(e.message.contains("No filter named 'frob'"), e.description)
            XCTAssertEqual(e.column, 46)
        }
        let u = try XCTUnwrap(syntaxError("{% include 'x.jinja' %}"))
        XCTAssertTrue(u.message.contains("unknown tag 'include'"), u.description)
        let stray = try XCTUnwrap(syntaxError("{% if true %}a{% endfor %}"))
        XCTAssertTrue(stray.message.contains("'endfor'") && stray.message.contains("'endif'"), stray.description)
    }

    func testBadExpression() throws {
        let e = try XCTUnwrap(syntaxError("{{ 1 + }}"))
        XCTAssertTrue(e.message.contains("Expected an expression"), e.description)
        XCTAssertEqual(e.line, 1)
        XCTAssertEqual(e.column, 8)
        let p = try XCTUnwrap(syntaxError("{{ (1 + 2 }}"))
        XCTAssertTrue(p.message.contains("')'"), p.description)
    }

    // MARK: raise_exception and runtime errors

    func testRaiseExceptionOnNonAlternatingRoles() throws {
        let messages = [ChatMessage(role: "user", content: "a"), ChatMessage(role: "user", content: "b")]
        for file in ["llama2-chat.jinja", "mistral-7b-instruct-v0.1.jinja", "mistral-7b-instruct-v1-system.jinja"] {
            let tpl = try template(file)
            XCTAssertThrowsError(try tpl.render(messages: messages, addGenerationPrompt: false, bosToken: "<s>", eosToken: "</s>"), file) { error in
                guard let e = error as? ChatTemplateError else { return XCTFail("\(file): \(error)") }
                XCTAssertEqual(e.kind, .raised, file)
                XCTAssertTrue(e.message.contains("roles must alternate user/assistant/user/assistant/..."), e.description)
                XCTAssertNotNil(e.line)
            }
        }
        // Mistral v0.1 rejects a system role.
        let mistral = try template("mistral-7b-instruct-v0.1.jinja")
        XCTAssertThrowsError(try mistral.render(messages: [ChatMessage(role: "system", content: "s")], addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>"))
    }

    func testRuntimeErrorsHavePositions() throws {
        let tpl = try ChatTemplate("{{ 'a' }}\n{{ bos_token + 1 }}")
        XCTAssertThrowsError(try tpl.render(messages: [], addGenerationPrompt: false, bosToken: "", eosToken: "")) { error in
            let e = error as! ChatTemplateError
            XCTAssertEqual(e.kind, .render)
            XCTAssertEqual(e.line, 2)
            XCTAssertTrue(e.message.contains("can only concatenate str"), e.description)
        }
        let undef = try ChatTemplate("{{ nothing.here }}")
        XCTAssertThrowsError(try undef.render(messages: [], addGenerationPrompt: false, bosToken: "", eosToken: "")) { error in
            XCTAssertTrue((error as! ChatTemplateError).message.contains("'nothing' is undefined"))
        }
    }

    // MARK: API

    func testSmolLM2FromGGUFTemplate() throws {
        let tpl = try template("smollm2-135m-instruct.jinja")
        let out = try tpl.render(messages: [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true,
                                 bosToken: "<|im_start|>", eosToken: "<|im_end|>")
        XCTAssertEqual(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }

    func testExtraContextAndWhitespaceControl() throws {
        let tpl = try ChatTemplate("{%- if date_string is defined -%}\n  Today: {{ date_string }}\n{%- endif %}\n{{ bos_token }}")
        XCTAssertEqual(try tpl.render(messages: [], addGenerationPrompt: false, bosToken: "<s>", eosToken: "",
                                      extraContext: ["date_string": "26 Jul 2024"]), "Today: 26 Jul 2024<s>")
        XCTAssertEqual(try tpl.render(messages: [], addGenerationPrompt: false, bosToken: "<s>", eosToken: ""), "<s>")
    }

    func testChatMessageCodable() throws {
        let m = ChatMessage(role: "user", content: "hé \"q\"")
        let back = try JSONDecoder().decode(ChatMessage.self, from: JSONEncoder().encode(m))
        XCTAssertEqual(back, m)
    }

    func testTemplateIsSendableAndReusable() throws {
        let tpl = try template("llama3-instruct.jinja")
        let msgs = [ChatMessage(role: "user", content: "x")]
        let a = try tpl.render(messages: msgs, addGenerationPrompt: true, bosToken: "<|begin_of_text|>", eosToken: "<|eot_id|>")
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            let b = try? tpl.render(messages: msgs, addGenerationPrompt: true, bosToken: "<|begin_of_text|>", eosToken: "<|eot_id|>")
            XCTAssertEqual(a, b)
        }
    }
}

/// A JSON parser that keeps object key order (JSONSerialization does not), producing Jinja values.
struct ChatTemplateJSONParser {
    private let s: [UInt8]
    private var i = 0
    init(_ text: String) { s = Array(text.utf8) }

    struct Failure: Error { let offset: Int }

    mutating func parse() throws -> JinjaValue {
        let v = try value()
        skip()
        guard i == s.count else { throw Failure(offset: i) }
        return v
    }

    private mutating func skip() { while i < s.count, [0x20, 0x0A, 0x0D, 0x09].contains(s[i]) { i += 1 } }

    private mutating func value() throws -> JinjaValue {
        skip()
        guard i < s.count else { throw Failure(offset: i) }
        switch s[i] {
        case UInt8(ascii: "{"):
            i += 1
            var d = JinjaDict()
            skip()
            if s[i] == UInt8(ascii: "}") { i += 1; return .dict(d) }
            while true {
                skip()
                let k = try string()
                skip()
                guard s[i] == UInt8(ascii: ":") else { throw Failure(offset: i) }
                i += 1
                d[.string(k)] = try value()
                skip()
                if s[i] == UInt8(ascii: ",") { i += 1; continue }
                guard s[i] == UInt8(ascii: "}") else { throw Failure(offset: i) }
                i += 1
                return .dict(d)
            }
        case UInt8(ascii: "["):
            i += 1
            var l: [JinjaValue] = []
            skip()
            if s[i] == UInt8(ascii: "]") { i += 1; return .list(l) }
            while true {
                l.append(try value())
                skip()
                if s[i] == UInt8(ascii: ",") { i += 1; continue }
                guard s[i] == UInt8(ascii: "]") else { throw Failure(offset: i) }
                i += 1
                return .list(l)
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): i += 4; return .bool(true)
        case UInt8(ascii: "f"): i += 5; return .bool(false)
        case UInt8(ascii: "n"): i += 4; return .none
        default:
            let start = i
            while i < s.count, "+-0123456789.eE".utf8.contains(s[i]) { i += 1 }
            let text = String(decoding: s[start..<i], as: UTF8.self)
            if let n = Int(text) { return .int(n) }
            guard let d = Double(text) else { throw Failure(offset: start) }
            return .double(d)
        }
    }

    private mutating func string() throws -> String {
        guard s[i] == UInt8(ascii: "\"") else { throw Failure(offset: i) }
        i += 1
        var bytes: [UInt8] = []
        while true {
            guard i < s.count else { throw Failure(offset: i) }
            let c = s[i]
            i += 1
            if c == UInt8(ascii: "\"") { break }
            if c != UInt8(ascii: "\\") { bytes.append(c); continue }
            let e = s[i]
            i += 1
            switch e {
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "u"):
                var code = UInt32(String(decoding: s[i..<(i + 4)], as: UTF8.self), radix: 16)!
                i += 4
                if (0xD800..<0xDC00).contains(code), s[i] == UInt8(ascii: "\\"), s[i + 1] == UInt8(ascii: "u") {
                    let low = UInt32(String(decoding: s[(i + 2)..<(i + 6)], as: UTF8.self), radix: 16)!
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                bytes.append(contentsOf: Array(String(Character(Unicode.Scalar(code)!)).utf8))
            default: bytes.append(e)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
