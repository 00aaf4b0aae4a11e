import ArgumentParser
import Foundation

@main
struct FlexServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flexserve",
        abstract: "A low-latency LLM serving engine with speculative inference (SpecInfer).",
        subcommands: [
            SpecInferCommand.self, IncrDecodingCommand.self, GenerateCommand.self, TokenizeCommand.self, BenchCommand.self, PerplexityCommand.self,
            DownloadCommand.self, DatasetsCommand.self, ServeCommand.self, ChatCommand.self, GPUCheckCommand.self,
        ])

    static func main() async {
        let (arguments, runtime) = FlexFlowArguments.separate(Array(CommandLine.arguments.dropFirst()))
        if !runtime.isEmpty {
            let note = "note: ignoring the Legion runtime's flags \(runtime.joined(separator: " ")) (FlexServe sizes its own memory; "
                + "the device is --device, CPU threads --threads)\n"
            FileHandle.standardError.write(note.data(using: .utf8)!)
        }
        await main(arguments)
    }
}
