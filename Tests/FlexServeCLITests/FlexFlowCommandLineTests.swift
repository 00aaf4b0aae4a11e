import ArgumentParser
import FlexServe
import XCTest
@testable import flexserve

/// FlexFlow's documented `spec_infer` command lines (Legion's flags, its single-dash spellings, `--fusion`,
/// `--use-full-precision`) against the CLI.
final class FlexFlowCommandLineTests: XCTestCase {
    /// FlexFlow Serve's README example, as a user would paste it.
    let flexFlowCommand = [
        "spec-infer", "-ll:gpu", "4", "-ll:cpu", "4", "-ll:csize", "120000", "-ll:fsize", "20000", "-ll:zsize", "80000",
        "-lg:eager_alloc_percentage", "30", "--fusion", "--use-full-precision", "-llm-model", "meta-llama/Llama-2-7b-hf",
        "-ssm-model", "JackFram/llama-160m", "-prompt", "prompt/test.json", "-output-file", "output/spec_inference_llama.txt",
        "-tensor-parallelism-degree", "1", "--max-sequence-length", "512", "--max-requests-per-batch", "5",
    ]

    func testLegionFlagsAreSeparatedWithTheirValues() {
        let (kept, runtime) = FlexFlowArguments.separate(flexFlowCommand)
        XCTAssertEqual(runtime, ["-ll:gpu", "4", "-ll:cpu", "4", "-ll:csize", "120000", "-ll:fsize", "20000", "-ll:zsize", "80000",
                                 "-lg:eager_alloc_percentage", "30"])
        XCTAssertEqual(kept, ["spec-infer"] + flexFlowCommand.dropFirst(13))
        // A flag without a value, a logging flag, and everything after `--` kept as it is.
        let (kept2, runtime2) = FlexFlowArguments.separate(["incr-decoding", "-ll:force_kthreads", "-llm-model", "m", "-logfile", "x.log",
                                                            "--", "-ll:gpu", "1"])
        XCTAssertEqual(runtime2, ["-ll:force_kthreads", "-logfile", "x.log"])
        XCTAssertEqual(kept2, ["incr-decoding", "-llm-model", "m", "--", "-ll:gpu", "1"])
        // Other commands are not FlexFlow's programs: their arguments pass unchanged (and fail there if unknown).
        let serve = ["serve", "--model", "m", "-ll:gpu", "1"]
        XCTAssertEqual(FlexFlowArguments.separate(serve).arguments, serve)
    }

    func testFlexFlowCommandParses() throws {
        let command = try XCTUnwrap(try FlexServeCommand.parseAsRoot(FlexFlowArguments.separate(flexFlowCommand).arguments) as? SpecInferCommand)
        let o = command.options
        XCTAssertEqual(o.llmModel, "meta-llama/Llama-2-7b-hf")
        XCTAssertEqual(command.ssmModels, ["JackFram/llama-160m"])
        XCTAssertEqual(o.prompt, "prompt/test.json")
        XCTAssertEqual(o.outputFile, "output/spec_inference_llama.txt")
        XCTAssertEqual(o.tensorParallelism, 1)
        XCTAssertEqual(o.maxSequenceLength, 512)
        XCTAssertEqual(o.maxRequestsPerBatch, 5)
        XCTAssertTrue(o.fusion)
        XCTAssertTrue(o.useFullPrecision)
        XCTAssertNoThrow(try o.checkSupported())
        XCTAssertEqual(try o.computeDevice(), .cpu)
        // Unknown options stay errors.
        XCTAssertThrowsError(try FlexServeCommand.parseAsRoot(["spec-infer", "-llm-model", "m", "--no-such-flag"]))
    }

    func testFullPrecisionIsFP32OnTheGPU() throws {
        let gpu = try ServingOptions.parse(["--llm-model", "m", "--device", "cuda", "--use-full-precision"])
        XCTAssertEqual(try gpu.computeDevice(), .cuda(.fp32))
        XCTAssertEqual(try ServingOptions.parse(["--llm-model", "m", "--device", "cuda"]).computeDevice(), .cuda(.fp16))
        let contradiction = try ServingOptions.parse(["--llm-model", "m", "--device", "cuda", "--use-full-precision", "--data-type", "bf16"])
        XCTAssertThrowsError(try contradiction.computeDevice()) { error in
            XCTAssertTrue("\(error)".contains("--data-type bf16"), "\(error)")
        }
    }

    func testParallelismAndThreadsAreChecked() throws {
        for flag in ["-tensor-parallelism-degree", "-pipeline-parallelism-degree", "-data-parallelism-degree"] {
            let o = try ServingOptions.parse(["-llm-model", "m", flag, "2"])
            XCTAssertThrowsError(try o.checkSupported(), flag) { XCTAssertTrue("\($0)".contains("parallelism"), "\($0)") }
        }
        XCTAssertEqual(try ServingOptions.parse(["-llm-model", "m", "--sampling-seed", "7"]).seed, 7)
        XCTAssertEqual(try ServingOptions.parse(["-llm-model", "m", "--threads", "3"]).threads.threads, 3)
        XCTAssertThrowsError(try ServingOptions.parse(["-llm-model", "m", "--threads", "0"]))
    }
}
