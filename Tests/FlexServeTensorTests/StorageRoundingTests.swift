import XCTest
@testable import FlexServeTensor

/// `StorageRounding` against conversions it did not compute: each case is (fp32 bits, torch's bf16 bits, torch's fp16
/// bits), from `torch.tensor(x, dtype=torch.float32).to(torch.bfloat16 / torch.float16)` (torch 2.13, CPU): halfway
/// cases that must go to the even neighbour, overflow to inf, fp16 subnormals and underflow, then random values.
final class StorageRoundingTests: XCTestCase {
    static let cases: [(UInt32, UInt16, UInt16)] = [
        (0x3F80_8000, 0x3F80, 0x3C04),  // 1 + 2^-8: bf16 tie between 0x3F80 and 0x3F81 → even 0x3F80
        (0x3F81_8000, 0x3F82, 0x3C0C),  // bf16 tie between 0x3F81 and 0x3F82 → even 0x3F82
        (0x3F80_8001, 0x3F81, 0x3C04),  // just above the tie
        (0xBF81_8000, 0xBF82, 0xBC0C),  // negative tie
        (0x7F7F_FFFF, 0x7F80, 0x7C00),  // largest float: inf in both
        (0x3F80_1000, 0x3F80, 0x3C00),  // 1 + 2^-11: fp16 tie between 1 and 1 + 2^-10 → 1
        (0x3F80_3000, 0x3F80, 0x3C02),  // 1 + 3·2^-11: fp16 tie → 1 + 2^-9 (even)
        (0x477F_F000, 0x4780, 0x7C00),  // 65520: fp16 tie between 65504 and 2^16 → inf
        (0x477F_EFFF, 0x4780, 0x7BFF),  // just under: 65504
        (0x3300_0000, 0x3300, 0x0000),  // 2^-25: fp16 tie between 0 and 2^-24 → 0
        (0x3340_0000, 0x3340, 0x0001),  // 3·2^-26 → 2^-24
        (0x0000_0001, 0x0000, 0x0000),  // smallest fp32 subnormal
        (0x8000_0000, 0x8000, 0x8000),  // -0
        (0x7F80_0000, 0x7F80, 0x7C00),  // inf
        (0x387F_C000, 0x3880, 0x03FF),  // fp16 subnormal range
        (0x3C79_53A6, 0x3C79, 0x23CB), (0x3ED3_51D2, 0x3ED3, 0x369B), (0xB469_1F84, 0xB469, 0x8004),
        (0xB52E_CEE4, 0xB52F, 0x800B), (0xB3F4_712E, 0xB3F4, 0x8002), (0x3884_CCA8, 0x3885, 0x0426),
        (0x3FB5_86AA, 0x3FB6, 0x3DAC), (0xB98B_9C7B, 0xB98C, 0x8C5D), (0xBF87_90EE, 0xBF88, 0xBC3D),
        (0xC40F_D8BE, 0xC410, 0xE07F), (0xB950_B859, 0xB951, 0x8A86), (0x44F9_4E86, 0x44F9, 0x67CA),
        (0x444A_F305, 0x444B, 0x6258), (0x33FC_F5ED, 0x33FD, 0x0002), (0xB347_40CB, 0xB347, 0x8001),
        (0x3625_11EA, 0x3625, 0x0029), (0x36C5_3531, 0x36C5, 0x0063), (0xC427_7C55, 0xC427, 0xE13C),
        (0x4797_220A, 0x4797, 0x7C00), (0xC4C9_1D39, 0xC4C9, 0xE649), (0x382F_AAB9, 0x3830, 0x02BF),
        (0x43DB_2672, 0x43DB, 0x5ED9), (0xC407_A102, 0xC408, 0xE03D), (0xB8BF_8A82, 0xB8C0, 0x85FC),
    ]

    func testRoundsLikeTorch() {
        for (bits, bf16, f16) in Self.cases {
            let x = Float(bitPattern: bits)
            let b = StorageRounding.round(x, to: .bf16), h = StorageRounding.round(x, to: .f16)
            XCTAssertEqual(b.bitPattern, UInt32(bf16) << 16, String(format: "bf16 of %08x", bits))
            XCTAssertEqual(h.bitPattern, Float(Float16(bitPattern: f16)).bitPattern, String(format: "fp16 of %08x", bits))
            XCTAssertEqual(StorageRounding.round(x, to: .f32).bitPattern, bits)
        }
    }

    func testBufferFormMatchesScalarForm() {
        for dtype in [DType.f16, .bf16, .f32] {
            var values = Self.cases.map { Float(bitPattern: $0.0) }
            let expected = values.map { StorageRounding.round($0, to: dtype).bitPattern }
            values.withUnsafeMutableBufferPointer { StorageRounding.round($0.baseAddress!, count: $0.count, to: dtype) }
            XCTAssertEqual(values.map(\.bitPattern), expected, "\(dtype)")
        }
        XCTAssertTrue(StorageRounding.supports(.bf16))
        XCTAssertFalse(StorageRounding.supports(.q8_0))
    }
}
