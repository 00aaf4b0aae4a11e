import ArgumentParser
import FlexServe
import FlexServeTokenizers
import Foundation

/// `flexserve chat`: a multi-round conversation in the terminal through the model's chat template.
struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a model in the terminal (its own chat template; replies stream). /reset clears the conversation, /exit quits.")

    @Option(name: [.customLong("model"), .customLong("llm-model")], help: "LLM: a HuggingFace folder, a .gguf file, or a hub id in the cache.")
    var model: String
    @Option(name: .customLong("ssm-model"), help: "SSM for speculative decoding (repeatable).")
    var ssmModels: [String] = []
    @Option(name: .customLong("system"), help: "A system prompt.") var system: String?
    @Option(name: .customLong("chat-template"), help: "A Jinja chat template file to use instead of the model's own.")
    var chatTemplate: String?
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 512
    @Option(help: "0 is greedy.") var temperature: Float = 0
    @Option(name: [.customLong("top-p"), .customLong("topp")]) var topP: Float = 0.9
    @Option(name: [.customLong("top-k"), .customLong("topk")]) var topK = 0
    @Option var seed: UInt64?
    @Option(name: [.customLong("max-sequence-length"), .customLong("max-seq-length")]) var maxSequenceLength = 2048
    @Flag(name: .customLong("stats"), help: "Print tokens/s after each reply.") var stats = false
    @OptionGroup var threads: ThreadOptions

    mutating func run() async throws {
        threads.apply()
        let status = LoadingStatus()
        status.begin(model)
        let llm = try LLM(model)
        let ssms = try ssmModels.map { try SSM($0) }
        status.done(([model] + ssmModels).joined(separator: ", "))

        let source: String
        if let chatTemplate {
            guard let s = try? String(contentsOfFile: chatTemplate, encoding: .utf8) else {
                throw ValidationError("cannot read chat template file \(chatTemplate)")
            }
            source = s
        } else {
            guard let s = llm.tokenizer.chatTemplate else {
                throw ValidationError("\(model) has no chat template; pass --chat-template FILE")
            }
            source = s
        }
        let template = try ChatTemplate(source)
        let tok = llm.tokenizer
        let bos = tok.bosTokenID.flatMap { tok.token($0) } ?? ""
        let eos = tok.eosTokenID.flatMap { tok.token($0) } ?? ""
        let contextLimit = llm.config.maxPositionEmbeddings > 0 ? llm.config.maxPositionEmbeddings : maxSequenceLength
        let seqLength = min(maxSequenceLength, contextLimit)
        try llm.compile(GenerationConfig(), ssms: ssms, options: EngineOptions(maxRequestsPerBatch: 1, maxSeqLength: seqLength))
        let config = GenerationConfig(doSample: temperature > 0, temperature: max(temperature, 1e-6), topP: topP, topK: topK, seed: seed)

        let interactive = isatty(0) != 0
        var messages: [ChatMessage] = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        if interactive {
            FileHandle.standardError.write("Chatting with \(model). /reset clears the conversation, /exit quits.\n".data(using: .utf8)!)
        }
        while true {
            if interactive { print("\u{1B}[1m>\u{1B}[0m ", terminator: "") } else { print("> ", terminator: "") }
            fflush(stdout)
            guard let line = readLine() else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/exit" || input == "/quit" { break }
            if input == "/reset" {
                messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
                print("(conversation cleared)")
                continue
            }
            messages.append(ChatMessage(role: "user", content: input))

            // Drop the oldest rounds (never the system prompt) until the prompt leaves room for a reply.
            var ids: [Int] = []
            while true {
                let prompt = try template.render(messages: messages, addGenerationPrompt: true, bosToken: bos, eosToken: eos)
                ids = tok.encode(prompt, addSpecialTokens: false)
                let first = messages.first?.role == "system" ? 1 : 0
                if ids.count + min(maxNewTokens, 64) < seqLength || messages.count - first <= 1 { break }
                messages.removeSubrange(first..<min(first + 2, messages.count - 1))
            }
            if ids.count >= seqLength - 1 {
                print("(message too long for the context of \(seqLength) tokens)")
                messages.removeLast()
                continue
            }

            var settings = config
            settings.maxNewTokens = min(maxNewTokens, seqLength - ids.count)
            var reply = ""
            var result: GenerationResult?
            for try await event in llm.events(tokens: ids, text: "", config: settings) {
                switch event {
                case .piece(let p):
                    print(p.text, terminator: "")
                    fflush(stdout)
                    reply += p.text
                case .finished(let r):
                    result = r
                }
            }
            print("")
            fflush(stdout)
            messages.append(ChatMessage(role: "assistant", content: result?.outputText ?? reply))
            if stats, let r = result {
                FileHandle.standardError.write(String(format: "[%d tokens, %.1f tokens/s, first token after %.0f ms]\n",
                                                      r.outputTokens.count, r.tokensPerSecond, r.timeToFirstTokenSeconds * 1000).data(using: .utf8)!)
            }
        }
    }
}
