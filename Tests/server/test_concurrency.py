"""32 concurrent streaming clients with different prompts and settings: each output equals the
output of the same request sent alone (greedy, and seeded sampling), none is lost or mixed up."""
import asyncio
import random

N = 32


def make_requests(name):
    rng = random.Random(2024)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "engine", "paper", "light"]
    requests = []
    for i in range(N):
        prompt = f"{i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        r = dict(model=name, prompt=prompt, max_tokens=rng.randint(4, 80), temperature=0)
        if i % 4 == 1:
            r.update(temperature=0.8, seed=1000 + i, top_p=0.9)
        if i % 4 == 2:
            r.update(temperature=1.2, seed=i, extra_body={"top_k": 20})
        if i % 8 == 3:
            r["stop"] = ["ab", "\n"]
        requests.append(r)
    return requests


def test_concurrent_streams_match_single_requests(tiny):
    requests = make_requests(tiny.name)
    client = tiny.client()
    alone = []
    for r in requests:
        c = client.completions.create(**r)
        alone.append((c.choices[0].text, c.choices[0].finish_reason, c.usage.completion_tokens))

    async def one(aclient, r):
        stream = await aclient.completions.create(stream=True, stream_options={"include_usage": True}, **r)
        text, finish, ids, usage = "", None, set(), None
        async for chunk in stream:
            ids.add(chunk.id)
            if chunk.usage:
                usage = chunk.usage.completion_tokens
            for choice in chunk.choices:
                text += choice.text
                finish = choice.finish_reason or finish
        assert len(ids) == 1
        return text, finish, usage, ids.pop()

    async def run_all():
        aclient = tiny.async_client()
        return await asyncio.gather(*(one(aclient, r) for r in requests))

    results = asyncio.run(run_all())
    assert len({r[3] for r in results}) == N  # one id per request
    for i, (r, expected) in enumerate(zip(results, alone)):
        assert r[:3] == expected, f"request {i} ({requests[i]}) differs when batched"
    m = tiny.wait_idle()
    assert m["flexserve_kv_blocks_free"] == m["flexserve_kv_blocks_total"]
