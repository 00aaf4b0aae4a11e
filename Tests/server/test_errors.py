"""Every kind of bad input gets OpenAI's error object with the right status, and the server keeps serving."""
import json

import openai
import pytest

PROMPT = "Hello"


def error_of(body):
    e = json.loads(body)["error"]
    assert set(e) == {"message", "type", "param", "code"}
    assert isinstance(e["message"], str) and e["message"]
    return e


def raw_post(server, path, body, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    status, text, _ = server.request("POST", path, body, h)
    return status, error_of(text) if status >= 400 else json.loads(text)


def still_serving(server):
    r = server.client().completions.create(model=server.name, prompt=PROMPT, max_tokens=3, temperature=0)
    assert r.usage.completion_tokens == 3


@pytest.mark.parametrize("body", ["{", "not json", '{"model": "x" "prompt": 1}', "[1, 2", "", '{"prompt": "a"} trailing'])
def test_malformed_json(tiny, body):
    status, e = raw_post(tiny, "/v1/completions", body.encode())
    assert status == 400 and e["type"] == "invalid_request_error"
    status, e = raw_post(tiny, "/v1/chat/completions", body.encode())
    assert status == 400


def test_body_must_be_an_object(tiny):
    status, e = raw_post(tiny, "/v1/completions", b"[1, 2, 3]")
    assert status == 400 and e["code"] == "invalid_type"


def test_unknown_model(tiny):
    with pytest.raises(openai.NotFoundError) as info:
        tiny.client().completions.create(model="gpt-17", prompt=PROMPT, max_tokens=3)
    assert info.value.status_code == 404
    assert info.value.body["code"] == "model_not_found" and info.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        tiny.client().models.retrieve("gpt-17")
    still_serving(tiny)


@pytest.mark.parametrize("field,value", [
    ("max_tokens", "ten"), ("max_tokens", 2.5), ("max_tokens", True), ("temperature", "hot"), ("top_p", [1]),
    ("stream", "yes"), ("seed", "abc"), ("stop", 5), ("stop", [1, 2]), ("prompt", 42), ("prompt", {"a": 1}),
    ("model", 7), ("echo", 1), ("stream_options", "x"), ("top_k", 1.5),
])
def test_wrong_types(tiny, field, value):
    body = {"model": tiny.name, "prompt": PROMPT, "max_tokens": 3}
    body[field] = value
    status, e = raw_post(tiny, "/v1/completions", json.dumps(body).encode())
    assert status == 400, (field, value, e)
    assert e["param"] == field and e["type"] == "invalid_request_error"


def test_wrong_types_through_openai_client(tiny):
    with pytest.raises(openai.BadRequestError) as info:
        tiny.client().completions.create(model=tiny.name, prompt=PROMPT, max_tokens="ten")
    assert info.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as info:
        tiny.client().chat.completions.create(model=tiny.name, messages="hi")
    assert info.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        tiny.client().chat.completions.create(model=tiny.name, messages=[{"role": "wizard", "content": "hi"}])
    assert info.value.body["param"] == "messages[0].role"


@pytest.mark.parametrize("field,value", [
    ("max_tokens", -1), ("max_tokens", 0), ("max_tokens", 10**12), ("max_tokens", 10**30), ("max_tokens", 300),
    ("temperature", -0.5), ("temperature", 3), ("top_p", 1.5), ("n", 2), ("n", 0), ("stop", ["a", "b", "c", "d", "e"]),
    ("logprobs", 3), ("presence_penalty", 1.0),
])
def test_bad_values(tiny, field, value):
    body = {"model": tiny.name, "prompt": PROMPT, "max_tokens": 3}
    body[field] = value
    status, e = raw_post(tiny, "/v1/completions", json.dumps(body).encode())
    assert status == 400, (field, value, e)
    assert e["param"] == field


def test_huge_max_tokens_names_the_context(tiny):
    with pytest.raises(openai.BadRequestError) as info:
        tiny.client().completions.create(model=tiny.name, prompt=PROMPT, max_tokens=1_000_000)
    assert info.value.body["code"] == "context_length_exceeded"
    assert "256" in info.value.body["message"]


def test_n_must_be_one(tiny):
    with pytest.raises(openai.BadRequestError) as info:
        tiny.client().completions.create(model=tiny.name, prompt=PROMPT, max_tokens=3, n=2)
    assert info.value.body["param"] == "n"
    r = tiny.client().completions.create(model=tiny.name, prompt=PROMPT, max_tokens=3, n=1, temperature=0)
    assert len(r.choices) == 1


def test_prompt_longer_than_context(tiny):
    long_prompt = "x" * 300  # 300 tokens, the tiny model's context is 256
    with pytest.raises(openai.BadRequestError) as info:
        tiny.client().completions.create(model=tiny.name, prompt=long_prompt, max_tokens=3)
    assert info.value.body["code"] == "context_length_exceeded" and info.value.body["param"] == "prompt"
    # exactly filling the context leaves no room either; one token less leaves room for one
    with pytest.raises(openai.BadRequestError):
        tiny.client().completions.create(model=tiny.name, prompt="x" * 256, max_tokens=1)
    r = tiny.client().completions.create(model=tiny.name, prompt="x" * 255, max_tokens=1, temperature=0)
    assert r.usage.completion_tokens == 1
    with pytest.raises(openai.BadRequestError):
        tiny.client().completions.create(model=tiny.name, prompt="x" * 255, max_tokens=2)
    still_serving(tiny)


def test_missing_and_empty_prompt(tiny):
    status, e = raw_post(tiny, "/v1/completions", json.dumps({"model": tiny.name}).encode())
    assert status == 400 and e["param"] == "prompt"
    status, e = raw_post(tiny, "/v1/completions", json.dumps({"model": tiny.name, "prompt": ""}).encode())
    assert status == 400 and e["param"] == "prompt"
    status, e = raw_post(tiny, "/v1/completions", json.dumps({"model": tiny.name, "prompt": [999]}).encode())
    assert status == 400 and e["param"] == "prompt"


def test_oversized_body(tiny):
    body = json.dumps({"model": tiny.name, "prompt": "a" * (5 << 20)}).encode()
    status, e = raw_post(tiny, "/v1/completions", body)
    assert status == 413 and e["code"] == "request_too_large"
    # chunked upload without a Content-Length is cut off at the limit too
    def chunks():
        piece = b"a" * 65536
        yield b'{"prompt": "'
        for _ in range(100):
            yield piece
        yield b'"}'
    status, text, _ = tiny.request("POST", "/v1/completions", chunks(), {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert status == 413 and error_of(text)["code"] == "request_too_large"
    still_serving(tiny)


def test_unknown_route_and_method(tiny):
    status, text, _ = tiny.request("GET", "/v1/nothing")
    assert status == 404 and error_of(text)["code"] == "unknown_url"
    status, text, _ = tiny.request("POST", "/v1/nothing", b"{}")
    assert status == 404


def test_chat_without_template(tiny):
    with pytest.raises(openai.BadRequestError) as info:
        tiny.client().chat.completions.create(model=tiny.name, messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "no_chat_template"


def test_generate_errors(tiny):
    status, r = tiny.post_json("/generate", {"max_new_tokens": 3})
    assert status == 400 and r["error"]["param"] == "prompt"
    status, r = tiny.post_json("/generate", {"prompt": "hi", "max_new_tokens": "3"})
    assert status == 400 and r["error"]["param"] == "max_new_tokens"
    status, r = tiny.post_json("/generate", {"prompt": "hi", "max_new_tokens": 10**9})
    assert status == 400 and r["error"]["code"] == "context_length_exceeded"


def test_server_survives_error_storm(tiny):
    for i in range(30):
        raw_post(tiny, "/v1/completions", b"{" * (i + 1))
    still_serving(tiny)
    m = tiny.wait_idle()
    assert m["flexserve_kv_blocks_free"] == m["flexserve_kv_blocks_total"]
