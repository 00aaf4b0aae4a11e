"""Chat completions through SmolLM2's own chat template."""
import pytest

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def chat(smol, messages, **kw):
    args = dict(model=smol.name, messages=messages, max_tokens=24, temperature=0)
    args.update(kw)
    return smol.client().chat.completions.create(**args)


def test_chat_answers_with_the_template(smol):
    r = chat(smol, QUESTION)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == smol.name
    msg = r.choices[0].message
    assert msg.role == "assistant"
    assert "Paris" in msg.content
    assert r.choices[0].finish_reason == "stop"  # <|im_end|> ends the reply
    assert "<|im_end|>" not in msg.content
    # the template wraps the message: many more prompt tokens than the question has words
    assert r.usage.prompt_tokens > 20
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_matches(smol):
    full = chat(smol, QUESTION).choices[0].message.content
    chunks = list(smol.client().chat.completions.create(model=smol.name, messages=QUESTION, max_tokens=24, temperature=0,
                                                        stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_multi_round_and_system_prompt(smol):
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
    ]
    r = chat(smol, messages, max_tokens=20)
    assert "Ada" in r.choices[0].message.content
    one_round = chat(smol, messages[-1:], max_tokens=20)
    assert r.usage.prompt_tokens > one_round.usage.prompt_tokens


def test_a_conversation_reuses_its_history_from_the_prefix_cache(smol):
    """The second round resends the first: whole blocks of it come from the prefix cache (OpenAI's cached_tokens), and
    the first round's answer is the same when asked again."""
    first = [{"role": "user", "content": "Name three rivers in Europe and say one thing about each."}]
    before = smol.metrics()["flexserve_prompt_tokens_cached_total"]
    a = chat(smol, first, max_tokens=40)
    history = first + [{"role": "assistant", "content": a.choices[0].message.content},
                       {"role": "user", "content": "Which of them is the longest?"}]
    b = chat(smol, history, max_tokens=16)
    cached = b.usage.prompt_tokens_details.cached_tokens
    assert cached % 16 == 0 and a.usage.prompt_tokens - 16 < cached < b.usage.prompt_tokens, (cached, a.usage, b.usage)
    again = chat(smol, first, max_tokens=40)
    assert again.choices[0].message.content == a.choices[0].message.content
    assert again.usage.prompt_tokens_details.cached_tokens == (a.usage.prompt_tokens - 1) // 16 * 16
    added = smol.metrics()["flexserve_prompt_tokens_cached_total"] - before
    assert added == sum(r.usage.prompt_tokens_details.cached_tokens for r in (a, b, again))


def test_chat_max_tokens_seed_and_stop(smol):
    r = chat(smol, QUESTION, max_tokens=2)
    assert r.usage.completion_tokens == 2 and r.choices[0].finish_reason == "length"
    r = chat(smol, QUESTION, max_completion_tokens=3)
    assert r.usage.completion_tokens == 3
    story = [{"role": "user", "content": "Tell me a story about a cat."}]
    a = chat(smol, story, temperature=0.9, seed=7, max_tokens=12).choices[0].message.content
    b = chat(smol, story, temperature=0.9, seed=7, max_tokens=12).choices[0].message.content
    assert a == b
    full = chat(smol, story, max_tokens=16).choices[0].message.content
    words = full.split()
    assert len(words) >= 3
    stopped = chat(smol, story, max_tokens=16, stop=[" " + words[2]])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == full[:full.index(" " + words[2])]


def test_chat_errors(smol):
    import openai
    with pytest.raises(openai.BadRequestError) as info:
        chat(smol, [])
    assert info.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        chat(smol, [{"role": "user"}, {"content": "x"}])
    assert info.value.body["param"] == "messages[1].role"
    with pytest.raises(openai.BadRequestError) as info:
        chat(smol, QUESTION, max_tokens=100_000)
    assert info.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as info:
        chat(smol, [{"role": "user", "content": "word " * 1500}])
    assert info.value.body["code"] == "context_length_exceeded" and info.value.body["param"] == "messages"
    with pytest.raises(openai.NotFoundError):
        smol.client().chat.completions.create(model="nope", messages=QUESTION)
