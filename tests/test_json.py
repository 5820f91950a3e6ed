"""What the CLI writes is strict JSON: NaN and infinities become null (``runtime.save_json``)."""

import json

import numpy as np

from pgx.runtime import save_json


def test_non_finite_numbers_are_written_as_null(tmp_path):
    obj = {"nan": float("nan"), "inf": float("inf"), "np": np.float64("nan"), "ok": 1.5, "int": np.int64(3),
           "rows": [{"error": np.nan, "r": 0.25}], "array": np.array([1.0, np.nan, -np.inf]), "pair": (2.0, np.inf)}
    path = save_json(obj, tmp_path / "out.json")
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # strict parse
    assert loaded == {"nan": None, "inf": None, "np": None, "ok": 1.5, "int": 3, "rows": [{"error": None, "r": 0.25}],
                      "array": [1.0, None, None], "pair": [2.0, None]}
