"""Crash-safe training checkpoints (run_state.py): a crash between the two renames leaves `<dir>.old`,
and resuming finds it; the optimizer state and the step come back with the weights."""
import torch
from test_glue import TOK, tiny

from relay_ref.run_state import INFO_FILE, find_checkpoint, load_checkpoint, save_checkpoint


def test_a_crash_between_the_renames_resumes_from_the_old_checkpoint(tmp_path):
    model = tiny(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[1, 2, 3]])).sum().backward()
    opt.step()
    ckpt = tmp_path / "checkpoint"
    save_checkpoint(ckpt, model, TOK, opt, step=7)
    ckpt.rename(tmp_path / "checkpoint.old")  # the crash: the old one moved aside, the new one not yet in place
    assert find_checkpoint(ckpt) == tmp_path / "checkpoint.old"
    loaded, loaded_opt, step = load_checkpoint(ckpt, lambda m: torch.optim.AdamW(m.parameters(), lr=1e-3))
    assert step == 7
    for a, b in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(next(iter(loaded_opt.state.values()))["exp_avg"], next(iter(opt.state.values()))["exp_avg"])


def test_saving_over_a_checkpoint_keeps_one_whole_checkpoint(tmp_path):
    model, ckpt = tiny(0), tmp_path / "checkpoint"
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(ckpt, model, TOK, opt, step=1)
    save_checkpoint(ckpt, model, TOK, opt, step=2)
    assert find_checkpoint(ckpt) == ckpt and not (tmp_path / "checkpoint.old").exists()
    assert load_checkpoint(ckpt, lambda m: torch.optim.AdamW(m.parameters()))[2] == 2


def test_a_crash_before_the_new_checkpoint_is_in_place_resumes_from_the_newest_complete_one(tmp_path, monkeypatch):
    from pathlib import Path
    import pytest
    model, ckpt = tiny(0), tmp_path / "checkpoint"
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(ckpt, model, TOK, opt, step=1)
    rename = Path.rename

    def crash_on_the_last_rename(self, target):
        if Path(target) == ckpt:
            raise OSError("killed")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", crash_on_the_last_rename)
    with pytest.raises(OSError, match="killed"):
        save_checkpoint(ckpt, model, TOK, opt, step=2)
    monkeypatch.undo()
    assert find_checkpoint(ckpt) is not None
    # the new checkpoint was written whole under .tmp (its trainer_info.json comes last): it is the newest
    assert load_checkpoint(ckpt, lambda m: torch.optim.AdamW(m.parameters()))[2] == 2
    (ckpt.with_name("checkpoint.tmp") / INFO_FILE).unlink()  # a .tmp cut short is never read
    assert load_checkpoint(ckpt, lambda m: torch.optim.AdamW(m.parameters()))[2] == 1
