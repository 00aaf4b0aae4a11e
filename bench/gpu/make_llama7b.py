"""Writes a LLaMA-7B-shaped fp16 model with random weights (config.json + safetensors) on the GPU machine,
then times HF transformers `generate` on it (batch 1, greedy), so FlexServe and HF run the same shape in one run.
Usage: make_llama7b.py MODEL_DIR RESULT_JSON [PROMPT_TOKENS NEW_TOKENS]
NEW_TOKENS 0: write the model only (no HF timing, no RESULT_JSON)."""
import json, os, sys, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

folder, result = sys.argv[1], sys.argv[2]
prompt_tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 128
new_tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 128

config = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                     rms_norm_eps=1e-5, tie_word_embeddings=False, torch_dtype="float16")
torch.manual_seed(0)
torch.set_default_dtype(torch.float16)
start = time.time()
with torch.device("cuda"):
    model = LlamaForCausalLM(config)  # initialised on the GPU in fp16: seconds, not minutes
model.eval()
torch.cuda.synchronize()
print(f"built the model on the GPU in {time.time() - start:.1f} s", flush=True)
if not os.path.exists(os.path.join(folder, "config.json")):
    start = time.time()
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="20GB")
    print(f"wrote {folder} in {time.time() - start:.1f} s", flush=True)

if new_tokens <= 0:
    sys.exit(0)
ids = torch.randint(0, config.vocab_size, (1, prompt_tokens), device="cuda")
with torch.no_grad():
    model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)  # warm-up
    torch.cuda.synchronize()
    start = time.time()
    out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    seconds = time.time() - start
generated = out.shape[1] - prompt_tokens
import transformers
report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "transformers": transformers.__version__,
          "prompt_tokens": prompt_tokens, "new_tokens": generated, "seconds": seconds, "tokens_per_second": generated / seconds,
          "parameter_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}
print(json.dumps(report), flush=True)
with open(result, "w") as f:
    json.dump(report, f, indent=2)
