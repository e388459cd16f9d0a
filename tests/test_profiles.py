"""profiles/batch_profiles.yaml: the shipped file loads, and every kind of mistake is named."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from batches.profiles import PRIORITIES, ProfileError, get_profile, load_profiles

GOOD = Path(settings.BASE_DIR) / "profiles" / "batch_profiles.yaml"


def write_variant(tmp_path: Path, old: str, new: str, name: str = "profiles.yaml") -> Path:
    """The shipped file with one exact piece of text replaced (the test fails if it is not there)."""
    text = GOOD.read_text()
    assert old in text, f"test setup: {old!r} not in the shipped file"
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def load_error(path: Path) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        load_profiles(path)
    return info.value


def test_it_loads_the_five_seed_profiles_with_their_batch_sizes_and_steps():
    config = load_profiles(GOOD)
    expected = {"speed": (8, 15), "balanced": (4, 20), "quality": (1, 30), "animation": (8, 20), "tileset": (8, 18)}
    assert {name: (p.batch_size, p.steps) for name, p in config.profiles.items()} == expected
    assert config.profiles["speed"].cfg == 7.0
    assert config.profiles["balanced"].cfg == 8.0
    assert config.profiles["quality"].cfg == 8.5
    assert config.profiles["quality"].sampler == "dpmpp_2m"
    for profile in config.profiles.values():
        assert profile.description and profile.title
        assert (profile.width, profile.height) == (1024, 1024)
        assert profile.scheduler in ("normal", "karras")
        assert profile.expected_images_per_minute == config.performance.images_per_minute_by_batch_size[
            profile.batch_size]


def test_it_loads_the_vram_table_and_hardware_limits():
    config = load_profiles(GOOD)
    assert config.vram_gb_by_batch == {1: 10.0, 4: 22.0, 8: 38.0}
    assert config.batch_sizes == (1, 4, 8)
    assert config.safe_limit_gb == 60
    assert config.usable_gb == 119
    assert config.vram_model == "sd_xl_base_1.0.safetensors"
    assert "GB10" in config.hardware.name and config.hardware.gpus == 1


def test_it_loads_queue_output_and_performance_settings():
    config = load_profiles(GOOD)
    assert config.queue.max_concurrent_batches == 1
    assert config.queue.priorities == PRIORITIES == ("urgent", "high", "normal", "low")
    assert config.default_priority == "normal"
    assert config.default_profile == "balanced"
    limits = config.queue.limits
    assert 15 in limits.steps and 30 in limits.steps and 0 not in limits.steps
    assert 1024 in limits.width and limits.max_prompt_length > 0 and limits.max_prompts_per_job > 0
    out = config.output
    assert out.base_dir == Path(settings.BASE_DIR) / "outputs" / "batches"
    assert out.filename_pattern.format(index=1, seed=42) == "sprite_0001_42.png"
    assert out.metadata_filename_pattern.format(index=1) == "sprite_0001.json"
    from datetime import datetime
    assert out.dir_pattern.format(created=datetime(2025, 11, 11, 14, 30, 5), id="7") == "batch_20251111_143005_7"
    assert out.batch_info_file == "batch_info.json" and out.metadata_per_image
    assert out.cleanup_after_days > 0
    assert config.performance.min_images_per_minute == 20
    assert config.performance.max_queue_latency_s == 1.0


def test_it_reads_the_settings_file_by_default_and_gets_a_profile_by_name():
    assert Path(settings.PROFILES_FILE).resolve() == GOOD.resolve()
    assert load_profiles().profiles.keys() == load_profiles(GOOD).profiles.keys()
    assert get_profile("quality").batch_size == 1


def test_it_names_the_choices_for_an_unknown_profile_name():
    with pytest.raises(ProfileError, match=r"no profile 'qualty'; did you mean 'quality'"):
        get_profile("qualty")


def test_it_caches_until_the_file_changes(tmp_path):
    path = write_variant(tmp_path, "    steps: 15\n", "    steps: 16\n")
    first = load_profiles(path)
    assert load_profiles(path) is first
    path.write_text(path.read_text().replace("    steps: 16\n", "    steps: 17\n"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_profiles(path).profiles["speed"].steps == 17


def test_it_refuses_a_missing_file_saying_how_to_fix_it(tmp_path):
    error = load_error(tmp_path / "nope.yaml")
    assert "nope.yaml does not exist" in str(error)
    assert "PROFILES_FILE" in str(error)


def test_it_refuses_broken_yaml_with_the_line(tmp_path):
    path = write_variant(tmp_path, "    steps: 20\n    cfg: 8.0\n", "    steps: 20\n   cfg: [8.0\n")
    error = load_error(path)
    assert str(path) in str(error)
    assert "not valid YAML at line" in str(error)


def test_it_refuses_a_top_level_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- speed\n- balanced\n")
    error = load_error(path)
    assert str(path) in str(error) and "top level must be a mapping" in str(error)


def test_it_refuses_an_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    assert "not nothing" in str(load_error(path))


def test_it_names_profile_key_and_suggestion_for_an_unknown_key(tmp_path):
    path = write_variant(tmp_path, "    steps: 30\n", "    stesp: 30\n")
    error = load_error(path)
    assert f"{path}, profile 'quality', key 'stesp' (line {line_of(path, 'stesp')}): unknown key; " \
           "did you mean 'steps'?" in str(error)
    # The misspelt key also leaves 'steps' missing; both are reported at once.
    assert "profile 'quality', key 'steps'" in str(error) and "required key is missing" in str(error)


def test_it_names_an_unknown_section_with_a_suggestion(tmp_path):
    path = write_variant(tmp_path, "\nhardware:\n", "\nhardwear:\n")
    error = load_error(path)
    assert "top level, key 'hardwear'" in str(error) and "did you mean 'hardware'?" in str(error)


def test_it_names_file_profile_and_key_for_a_wrong_type(tmp_path):
    path = write_variant(tmp_path, "    steps: 15\n", "    steps: twenty\n")
    message = str(load_error(path))
    assert f"{path}, profile 'speed', key 'steps' (line {line_of(path, 'twenty')})" in message
    assert "expected a whole number, got 'twenty' (text)" in message
    assert "write it like `steps: 20`" in message


def test_it_refuses_true_as_a_number(tmp_path):
    path = write_variant(tmp_path, "    cfg: 8.5\n", "    cfg: yes\n")
    assert "profile 'quality', key 'cfg'" in str(load_error(path))


def test_it_refuses_a_batch_size_without_a_vram_figure(tmp_path):
    path = write_variant(tmp_path, "    batch_size: 4\n", "    batch_size: 6\n")
    message = str(load_error(path))
    assert f"{path}, profile 'balanced', key 'batch_size'" in message
    assert "6 is not one of the batch sizes with a VRAM figure (1, 4, 8)" in message


def test_it_refuses_zero_steps(tmp_path):
    path = write_variant(tmp_path, "    steps: 18\n", "    steps: 0\n")
    message = str(load_error(path))
    assert "profile 'tileset', key 'steps'" in message and "must be at least 1" in message


def test_it_refuses_a_value_outside_the_queue_limits(tmp_path):
    path = write_variant(tmp_path, "    cfg: 7.5\n", "    cfg: 45\n")
    message = str(load_error(path))
    assert "profile 'tileset', key 'cfg'" in message and "outside queue.limits.cfg (0 to 30)" in message


def test_it_refuses_an_unknown_sampler_with_a_suggestion(tmp_path):
    path = write_variant(tmp_path, "    sampler: dpmpp_2m\n", "    sampler: dpmpp_2mm\n")
    message = str(load_error(path))
    assert "profile 'quality', key 'sampler'" in message and "did you mean 'dpmpp_2m'?" in message


def test_it_refuses_a_missing_seed_profile(tmp_path):
    text = GOOD.read_text()
    start, end = text.index("  tileset:\n"), text.index("# ----", text.index("  tileset:\n"))
    path = tmp_path / "no_tileset.yaml"
    path.write_text(text[:start] + text[end:])
    message = str(load_error(path))
    assert f"{path}, section 'profiles', key 'tileset'" in message
    assert "all five seed profiles" in message


def test_it_refuses_a_missing_required_key(tmp_path):
    path = write_variant(tmp_path, "    scheduler: karras\n    width: 1024\n    height: 1024\n"
                                   "    expected_images_per_minute: 24", "    width: 1024\n    height: 1024\n"
                                   "    expected_images_per_minute: 24")
    message = str(load_error(path))
    assert f"{path}, profile 'balanced', key 'scheduler'" in message
    assert "required key is missing: add a line like `scheduler: karras`" in message


def test_it_refuses_a_section_key_with_the_wrong_type(tmp_path):
    path = write_variant(tmp_path, "  safe_limit_gb: 60\n", "  safe_limit_gb: sixty\n")
    message = str(load_error(path))
    assert f"{path}, section 'vram', key 'safe_limit_gb'" in message


def test_it_refuses_a_vram_table_missing_a_seed_batch_size(tmp_path):
    path = write_variant(tmp_path, "    4: 22\n", "")
    message = str(load_error(path))
    assert "section 'vram', key 'gb_by_batch_size'" in message and "batch size 4 has no VRAM figure" in message
    # balanced uses batch 4, which now has no figure: said too.
    assert "profile 'balanced', key 'batch_size'" in message


def test_it_refuses_a_safe_limit_below_the_biggest_batch(tmp_path):
    path = write_variant(tmp_path, "  safe_limit_gb: 60\n", "  safe_limit_gb: 30\n")
    message = str(load_error(path))
    assert "profile 'speed', key 'batch_size'" in message and "above safe_limit_gb" in message


def test_it_refuses_a_default_profile_that_does_not_exist(tmp_path):
    path = write_variant(tmp_path, "  default_profile: balanced\n", "  default_profile: balance\n")
    message = str(load_error(path))
    assert "section 'queue', key 'default_profile'" in message and "did you mean 'balanced'?" in message


def test_it_refuses_an_output_pattern_that_does_not_format(tmp_path):
    path = write_variant(tmp_path, 'sprite_{index:04d}_{seed}.png', 'sprite_{number}_{seed}.png')
    message = str(load_error(path))
    assert "section 'output', key 'filename_pattern'" in message and "{index}, {seed}" in message


def test_it_refuses_a_key_written_twice(tmp_path):
    path = write_variant(tmp_path, "    steps: 15\n", "    steps: 15\n    steps: 16\n")
    message = str(load_error(path))
    assert str(path) in message and "key 'steps'" in message and "written twice" in message


def test_it_reports_every_problem_at_once(tmp_path):
    path = write_variant(tmp_path, "    steps: 15\n", "    steps: twenty\n")
    text = path.read_text().replace("    batch_size: 4\n", "    batch_size: 6\n").replace(
        "  safe_limit_gb: 60\n", "  safe_limit_gb: lots\n")
    path.write_text(text)
    error = load_error(path)
    assert len(error.problems) == 3
    assert str(error).startswith(f"{path} has 3 problems:")
    assert all(problem.startswith(str(path)) for problem in error.problems)
