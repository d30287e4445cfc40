from pathlib import Path

import pytest

from ragtune.errors import ConfigError
from ragtune.settings import Settings, describe, load_settings


def test_defaults_need_no_file_or_environment(tmp_path):
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.data_dir == Path("data")
    assert settings.retrieval.mode == "hybrid"
    assert settings.embedding.model == "all-MiniLM-L6-v2"


def test_environment_overrides_file(tmp_path):
    (tmp_path / "ragtune.toml").write_text('data_dir = "/srv/from-file"\n[retrieval]\ntop_k = 3\nmode = "bm25"\n')
    env = {"RAGTUNE_DATA_DIR": "/srv/from-env", "RAGTUNE_RETRIEVAL__TOP_K": "9", "UNRELATED": "x"}
    settings = load_settings(environ=env, cwd=tmp_path)
    assert settings.data_dir == Path("/srv/from-env")
    assert settings.retrieval.top_k == 9
    assert settings.retrieval.mode == "bm25"  # from the file, untouched by the environment


def test_yaml_file_and_json_list_in_environment(tmp_path):
    path = tmp_path / "conf.yaml"
    path.write_text("ollama:\n  model: ragtune\n")
    settings = load_settings(config_file=path, environ={"RAGTUNE_SERVER__CORS_ORIGINS": '["https://shop.example"]'})
    assert settings.ollama.model == "ragtune"
    assert settings.server.cors_origins == ["https://shop.example"]


def test_invalid_value_names_the_setting(tmp_path):
    with pytest.raises(ConfigError, match=r"retrieval.top_k"):
        load_settings(environ={"RAGTUNE_RETRIEVAL__TOP_K": "lots"}, cwd=tmp_path)


def test_unknown_setting_is_rejected(tmp_path):
    (tmp_path / "ragtune.toml").write_text("[retrieval]\ntopk = 3\n")
    with pytest.raises(ConfigError, match="topk"):
        load_settings(environ={}, cwd=tmp_path)


def test_a_foreign_ragtune_variable_is_ignored_but_a_typo_inside_a_section_is_not(tmp_path, caplog):
    env = {"RAGTUNE_TEST_OLLAMA_MODEL": "qwen", "RAGTUNE_RETRIEVAL__TOP_K": "4"}
    settings = load_settings(environ=env, cwd=tmp_path)
    assert settings.retrieval.top_k == 4
    assert "RAGTUNE_TEST_OLLAMA_MODEL" in caplog.text
    with pytest.raises(ConfigError, match="retrieval.topk"):
        load_settings(environ={"RAGTUNE_RETRIEVAL__TOPK": "4"}, cwd=tmp_path)


def test_overlap_must_be_smaller_than_chunk(tmp_path):
    with pytest.raises(ConfigError, match="chunk_overlap"):
        load_settings(environ={"RAGTUNE_CHUNKING__CHUNK_SIZE": "50", "RAGTUNE_CHUNKING__CHUNK_OVERLAP": "50"}, cwd=tmp_path)


def test_broken_file_and_missing_config_path_are_clear(tmp_path):
    (tmp_path / "ragtune.toml").write_text("data_dir = [unclosed\n")
    with pytest.raises(ConfigError, match="not valid toml"):
        load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="RAGTUNE_CONFIG"):
        load_settings(environ={"RAGTUNE_CONFIG": str(tmp_path / "nope.toml")}, cwd=tmp_path)


def test_every_setting_is_documented():
    rows = describe(Settings)
    assert len(rows) > 40
    undocumented = [name for name, _, text in rows if not text]
    assert undocumented == []


def test_settings_reference_matches_the_code():
    """docs/settings.md lists every setting with its current default (`ragtune config --markdown > docs/settings.md`)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "settings.md").read_text()
    rows = {
        line.split("|")[1].strip(" `"): line.split("|")[2].strip(" `") for line in text.splitlines() if line.startswith("| `")
    }
    expected = {name: default for name, default, _ in describe(Settings)}
    assert rows == expected


def test_a_list_that_is_not_json_and_a_file_that_is_not_a_table_are_clear(tmp_path):
    with pytest.raises(ConfigError, match=r"given as JSON.*RAGTUNE_SERVER__CORS_ORIGINS"):
        load_settings(environ={"RAGTUNE_SERVER__CORS_ORIGINS": "https://shop.example"}, cwd=tmp_path)
    (tmp_path / "ragtune.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a table of settings, not list"):
        load_settings(environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_overrides_and_environment_merge_into_the_file_section_by_section(tmp_path):
    (tmp_path / "ragtune.toml").write_text('[llm]\nengine = "none"\nmax_tokens = 100\n[chat]\nhistory_turns = 2\n')
    env = {"RAGTUNE_LLM__MAX_TOKENS": "200", "RAGTUNE_LLM__SEED": "7"}
    settings = load_settings(environ=env, cwd=tmp_path, overrides={"llm": {"seed": 9}})
    assert (settings.llm.engine, settings.llm.max_tokens, settings.llm.seed) == ("none", 200, 9)
    assert settings.chat.history_turns == 2


def test_settings_built_directly_read_the_process_environment_the_same_way(tmp_path, monkeypatch):
    (tmp_path / "ragtune.toml").write_text("[retrieval]\ntop_k = 3\n")
    monkeypatch.setenv("RAGTUNE_RETRIEVAL__MODE", "dense")
    settings = Settings()
    assert (settings.retrieval.top_k, settings.retrieval.mode) == (3, "dense")
    assert settings == load_settings()
