"""Write an SSM (a transformers LlamaForCausalLM with a tied head) as a llama.cpp-style GGUF file that
the engine loads (Sources/FlexServeModels/Weights/GGUFFile.swift, GGUFStore.swift): no tokenizer (the
SSM uses its LLM's), `llama.vocab_size` = K, the OOV input id under `flexserve.draft.oov_input_token_id`,
Q and K rows permuted as llama.cpp's converter does (the engine undoes it), matrices in Q8_0 (or F16/F32),
norms in F32, no `output.weight` (tied head).

`write_gguf` returns the weights as the engine will see them (dequantised), so that acceptance can be
measured on exactly the quantised model."""
import numpy as np
import torch

OOV_KEY = "flexserve.draft.oov_input_token_id"

HF_TO_GGUF = {
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight", "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
}


def permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py's LlamaModel.permute (rows of each head interleaved for its RoPE)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(sd, cfg):
    """(gguf name, hf name, float32 array) in file order; Q/K permuted."""
    out = [("token_embd.weight", "model.embed_tokens.weight", sd["model.embed_tokens.weight"])]
    for i in range(cfg.num_hidden_layers):
        for hf, gg in HF_TO_GGUF.items():
            name = f"model.layers.{i}.{hf}"
            w = sd[name]
            if hf == "self_attn.q_proj.weight":
                w = permute(w, cfg.num_attention_heads)
            elif hf == "self_attn.k_proj.weight":
                w = permute(w, cfg.num_key_value_heads)
            out.append((f"blk.{i}.{gg}", name, w))
    out.append(("output_norm.weight", "model.norm.weight", sd["model.norm.weight"]))
    return out


def write_gguf(model, path, qtype="Q8_0", oov_id=3, name="ssm", eos_id=2, bos_id=1):
    import gguf
    from gguf import GGMLQuantizationType as Q
    cfg = model.config
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rp = getattr(cfg, "rope_parameters", None) or {}
    theta = float(rp.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_vocab_size(cfg.vocab_size)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_freq_base(theta)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_bos_token_id(bos_id)
    w.add_eos_token_id(eos_id)
    w.add_uint32(OOV_KEY, oov_id)
    qt = {"Q8_0": Q.Q8_0, "F16": Q.F16, "F32": Q.F32}[qtype]
    w.add_file_type({"Q8_0": 7, "F16": 1, "F32": 0}[qtype])
    deq = {}
    for gname, hfname, arr in gguf_tensors(sd, cfg):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.ndim == 1 or qt == Q.F32:
            w.add_tensor(gname, arr)
            back = arr
        elif qt == Q.F16:
            a16 = arr.astype(np.float16)
            w.add_tensor(gname, a16)
            back = a16.astype(np.float32)
        else:
            q = gguf.quants.quantize(arr, qt)
            w.add_tensor(gname, q, raw_dtype=qt)
            back = gguf.quants.dequantize(q, qt).reshape(arr.shape)
        if hfname.endswith("q_proj.weight"):
            back = unpermute(back, cfg.num_attention_heads)
        elif hfname.endswith("k_proj.weight"):
            back = unpermute(back, cfg.num_key_value_heads)
        deq[hfname] = torch.from_numpy(np.ascontiguousarray(back))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return deq
