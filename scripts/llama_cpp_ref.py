#!/usr/bin/env python3
"""The reference side of scripts/bench-local.sh: llama.cpp (through the llama-cpp-python
package, when installed) on the same GGUF, prompt and thread count as `candor model bench`.
A reference to measure against, not a dependency of candor."""
import json
import resource
import sys
import time

from llama_cpp import Llama

path, threads, prompt_tokens, decode_tokens, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=2048, n_batch=512, verbose=False)
text = "Describe the history of the city of Paris, its rivers, bridges and markets, in detail. " * (prompt_tokens // 8 + 2)
tokens = llm.tokenize(text.encode(), add_bos=False)[:prompt_tokens]
llm.reset()
llm.eval(tokens[:16])  # warm-up


def median(xs):
    return sorted(xs)[len(xs) // 2]


pp = []
for _ in range(repeats):
    llm.reset()
    t = time.perf_counter()
    llm.eval(tokens)
    pp.append(len(tokens) / (time.perf_counter() - t))
dec = []
for _ in range(repeats):
    llm.reset()
    llm.eval(tokens[:8])
    t = time.perf_counter()
    for _ in range(decode_tokens):
        llm.eval([llm.sample(temp=0.0)])
    dec.append(decode_tokens / (time.perf_counter() - t))
print(json.dumps({
    "prompt_tokens": len(tokens),
    "prompt_tok_s": median(pp),
    "decode_tok_s": median(dec),
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
