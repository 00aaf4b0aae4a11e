import ArgumentParser
import FlexServe
import Foundation

/// One prompt from the command line, streamed to the terminal.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Generate a completion of one prompt, streamed.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Option(name: [.customLong("ssm-model")]) var ssmModels: [String] = []
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 128
    @Flag(name: .customLong("do-sample")) var doSample = false
    @Option var temperature: Float = 0.9
    @Option(name: .customLong("topp")) var topP: Float = 0.8
    @Option(name: .customLong("topk")) var topK = 0
    @Option var seed: UInt64?
    @Option var stop: [String] = []
    @Argument(help: "The prompt.") var prompt: String
    @OptionGroup var threads: ThreadOptions

    mutating func run() async throws {
        threads.apply()
        let status = LoadingStatus()
        status.begin(model)
        let llm = try LLM(model)
        let ssms = try ssmModels.map { try SSM($0) }
        status.done(model)
        try llm.compile(GenerationConfig(doSample: doSample, temperature: temperature, topP: topP, topK: topK,
                                         maxNewTokens: maxNewTokens, stop: stop, seed: seed), ssms: ssms)
        let start = Date()
        var count = 0
        print(prompt, terminator: "")
        for try await piece in llm.stream(prompt) {
            print(piece.text, terminator: "")
            fflush(stdout)
            count += piece.tokens.count
        }
        let seconds = Date().timeIntervalSince(start)
        FileHandle.standardError.write(String(format: "\n[%d tokens, %.1f tokens/s]\n", count, Double(count) / seconds).data(using: .utf8)!)
    }
}

/// Prints the token ids of a text as a JSON array.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "Print the token ids of a text as JSON.")

    @Option(name: [.customLong("model"), .customLong("llm-model")]) var model: String
    @Flag(name: .customLong("no-special-tokens"), help: "Do not add BOS/EOS as the tokenizer config says.") var noSpecial = false
    @Argument var text: String

    func run() throws {
        let llm = try LLM(model)
        let ids = llm.tokenizer.encode(text, addSpecialTokens: !noSpecial)
        print("[" + ids.map(String.init).joined(separator: ",") + "]")
    }
}
