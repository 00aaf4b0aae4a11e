import ArgumentParser

@main
struct FlexServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flexserve",
        abstract: "A low-latency LLM serving engine with speculative inference (SpecInfer).",
        subcommands: [
            SpecInferCommand.self, IncrDecodingCommand.self, GenerateCommand.self, TokenizeCommand.self, BenchCommand.self, PerplexityCommand.self,
            DownloadCommand.self, DatasetsCommand.self, ServeCommand.self, ChatCommand.self, GPUCheckCommand.self,
        ])
}
