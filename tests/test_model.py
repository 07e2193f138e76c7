"""Qwen3 parity with `transformers` (the oracle), KV-cache decoding, and checkpoint round trips."""
import json

import pytest
import torch
from hf_oracle import make_hf_model, save_hf_model

import relay_ref
from relay_ref.model import Qwen3Config

VARIANTS = {
    "untied": dict(),
    "tied": dict(tie_word_embeddings=True),
    "head_dim_not_hidden_over_heads": dict(head_dim=24, num_attention_heads=6, num_key_value_heads=3),
    "rope_theta_1e6": dict(rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}),
}
PROMPTS = [[5, 17, 33, 2, 90, 41, 7], [12, 3], [60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 1]]


def hf_greedy(hf, prompt, n):
    out = hf.generate(torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                      eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt):].tolist()


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, tmp_path_factory):
    hf, path = save_hf_model(tmp_path_factory.mktemp(request.param), seed=1, **VARIANTS[request.param])
    return hf, relay_ref.load_model(path), path


def test_logits_match_transformers(pair):
    hf, ours, _ = pair
    ids = torch.randint(0, 96, (3, 21), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = hf(ids).logits
    assert ref.std() > 1.0, "logits must not be flat, or greedy comparisons mean nothing"
    torch.testing.assert_close(ours(ids), ref, atol=1e-4, rtol=0)


def test_greedy_generation_matches_transformers_on_ragged_batch(pair):
    hf, ours, _ = pair
    out = relay_ref.generate(ours, PROMPTS, max_new_tokens=32)
    assert out == [hf_greedy(hf, p, 32) for p in PROMPTS]


def test_cached_decoding_equals_full_recompute(pair):
    _, ours, _ = pair
    prompt = PROMPTS[0]
    tokens = relay_ref.generate(ours, [prompt], max_new_tokens=24)[0]
    seq = list(prompt)
    for t in tokens:  # recompute the whole sequence for every token, no cache at all
        with torch.no_grad():
            assert ours(torch.tensor([seq]))[0, -1].argmax().item() == t
        seq.append(t)


def test_save_then_load_is_bit_exact_and_transformers_reads_it(pair, tmp_path):
    _, ours, _ = pair
    ours.save_pretrained(tmp_path / "ours")
    again = relay_ref.load_model(tmp_path / "ours")
    for (name, a), (_, b) in zip(ours.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert again.lm_head.weight is again.model.embed_tokens.weight or not again.config.tie_word_embeddings

    from transformers import Qwen3ForCausalLM
    hf = Qwen3ForCausalLM.from_pretrained(tmp_path / "ours").eval()
    ids = torch.randint(0, 96, (2, 13))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, ours(ids), atol=1e-4, rtol=0)


def test_sharded_checkpoint_loads(tmp_path):
    hf = make_hf_model(seed=3)
    hf.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    ids = torch.randint(0, 96, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(relay_ref.load_model(tmp_path)(ids), hf(ids).logits, atol=1e-4, rtol=0)


def test_rows_of_a_batch_equal_the_rows_run_alone(pair):
    _, ours, _ = pair
    together = relay_ref.generate(ours, PROMPTS, max_new_tokens=20)
    assert together == [relay_ref.generate(ours, [p], max_new_tokens=20)[0] for p in PROMPTS]


def test_generation_stops_after_eos_and_includes_it(pair):
    _, ours, _ = pair
    free = relay_ref.generate(ours, PROMPTS, max_new_tokens=20)
    eos = free[0][5]
    out = relay_ref.generate(ours, PROMPTS, max_new_tokens=20, eos_ids=(eos,))
    for row, full in zip(out, free):
        cut = full.index(eos) + 1 if eos in full else len(full)
        assert row == full[:cut]


def test_sampling_is_reproducible_from_a_seed_and_top_p_narrows_it(pair):
    _, ours, _ = pair
    a = relay_ref.generate(ours, PROMPTS, 16, temperature=1.0, seed=7)
    assert a == relay_ref.generate(ours, PROMPTS, 16, temperature=1.0, seed=7)
    assert a != relay_ref.generate(ours, PROMPTS, 16, temperature=1.0, seed=8)
    # top_p this small keeps only the most likely token: sampling becomes greedy
    assert relay_ref.generate(ours, PROMPTS, 16, temperature=1.0, top_p=1e-6, seed=7) == \
        relay_ref.generate(ours, PROMPTS, 16)


def test_top_p_samples_only_from_the_nucleus():
    from relay_ref.sampling import sample
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(4000, 4)
    noise = torch.empty(4000, 4).exponential_(generator=torch.Generator().manual_seed(0))
    drawn = sample(logits, torch.ones(4000), noise, top_p=torch.full((4000,), 0.7))
    counts = torch.bincount(drawn, minlength=4).float() / 4000
    assert counts[2:].sum() == 0  # 0.5 + 0.3 reaches 0.7: tokens 2 and 3 are outside the nucleus
    assert abs(counts[0] - 0.5 / 0.8) < 0.03


# --- bad checkpoints and configs: each error names the tensor and the file -------------------------

def broken_checkpoint(tmp_path, mutate):
    from safetensors.torch import load_file, save_file
    _, path = save_hf_model(tmp_path, seed=2)
    state = load_file(path / "model.safetensors")
    mutate(state)
    save_file(state, path / "model.safetensors")
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s.pop("model.layers.1.mlp.up_proj.weight"), "missing tensor 'model.layers.1.mlp.up_proj.weight'"),
    (lambda s: s.update({"model.layers.0.extra.weight": torch.zeros(2)}), "unexpected tensor 'model.layers.0.extra.weight'"),
    (lambda s: s.update({"model.norm.weight": torch.zeros(65)}), "'model.norm.weight' has shape (65,), expected (64,)"),
    (lambda s: s.update({"model.norm.weight": torch.zeros(64, dtype=torch.int32)}), "'model.norm.weight' has dtype I32"),
])
def test_bad_checkpoint_errors_name_the_tensor_and_file(tmp_path, mutate, message):
    path = broken_checkpoint(tmp_path, mutate)
    with pytest.raises(ValueError) as err:
        relay_ref.load_model(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_tied_head_that_differs_from_the_embedding_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file
    _, path = save_hf_model(tmp_path, seed=2, tie_word_embeddings=True)
    state = load_file(path / "model.safetensors")
    state["lm_head.weight"] = state["model.embed_tokens.weight"] + 1
    save_file(state, path / "model.safetensors")
    with pytest.raises(ValueError, match="'lm_head.weight' differs"):
        relay_ref.load_model(path)


def test_missing_shard_and_missing_directory_are_named(tmp_path):
    hf = make_hf_model(seed=3)
    hf.save_pretrained(tmp_path / "ck", max_shard_size="40KB")
    shard = sorted((tmp_path / "ck").glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=shard.name):
        relay_ref.load_model(tmp_path / "ck")
    with pytest.raises(FileNotFoundError, match="not a checkpoint directory"):
        relay_ref.load_model(tmp_path / "nowhere")


BASE = dict(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=32, rope_theta=1e6)


@pytest.mark.parametrize("extra, message", [
    ({"attention_bias": True}, "attention_bias"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope scaling"),
    ({"use_sliding_window": True, "sliding_window": 128}, "sliding-window"),
    ({"hidden_act": "gelu"}, "hidden_act"),
])
def test_config_refuses_unsupported_features(extra, message):
    with pytest.raises(ValueError, match=message):
        Qwen3Config.from_dict({**BASE, **extra}, source="x/config.json")


def test_config_reads_rope_theta_at_top_level_or_in_rope_parameters_and_head_dim_from_file():
    top = Qwen3Config.from_dict({**BASE, "rope_theta": 5e6, "head_dim": 24})
    nested = Qwen3Config.from_dict({**{k: v for k, v in BASE.items() if k != "rope_theta"},
                                    "rope_parameters": {"rope_type": "default", "rope_theta": 5e6}})
    assert top.rope_theta == nested.rope_theta == 5e6
    assert top.head_dim == 24  # never hidden_size / heads (16 here; Qwen3-0.6B: 128, not 64)
    with pytest.raises(ValueError, match="missing field.*head_dim"):
        Qwen3Config.from_dict({k: v for k, v in BASE.items() if k != "head_dim"}, source="x/config.json")


def test_saved_config_round_trips(tmp_path):
    cfg = Qwen3Config.from_dict({**BASE, "eos_token_id": 7, "tie_word_embeddings": True})
    assert Qwen3Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_a_hub_id_is_fetched_through_huggingface_hub(tmp_path, monkeypatch):
    import huggingface_hub
    hf, path = save_hf_model(tmp_path, seed=4)
    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, allow_patterns: asked.append((repo, allow_patterns)) or str(path))
    model = relay_ref.load_model("Qwen/Qwen3-Tiny")
    assert asked[0][0] == "Qwen/Qwen3-Tiny" and "*.safetensors" in asked[0][1]
    ids = torch.randint(0, 96, (1, 5))
    with torch.no_grad():
        torch.testing.assert_close(model(ids), hf(ids).logits, atol=1e-4, rtol=0)
