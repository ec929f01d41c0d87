"""Loading a PyTorch model folder without unpickling anything from it.

tunedag saves networks with `torch.export` (MLflow's "pt2" format: a graph, JSON and raw tensors).
MLflow's loader would also take a pickled module (`model.pth`, read with `torch.load`, which runs
code) and, by default (`MLFLOW_ALLOW_PICKLE_DESERIALIZATION` is true), loads a pt2 archive's
records with pickle too; a folder's MLmodel can also put its `code` folder on `sys.path`. So the
folder is checked here first, and MLflow loads it with pickle deserialization disallowed: MLflow
then refuses any record of the archive that is not plain text, JSON or tensors that torch's
`weights_only` reader accepts, before `torch.export.load` reads it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import yaml

from tunedag.errors import ConfigError

PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"  # MLflow's documented setting
_SWITCH_LOCK = threading.Lock()


def load_torch_module(model_dir: Path) -> tuple[Any, dict]:
    """The exported module of an MLflow PyTorch model folder and the MLmodel's `metadata`, unpickling nothing.

    Raises ConfigError, naming the folder, for a folder saved with pickle (`model.pth`), one whose
    MLmodel carries code or names a model file outside the folder, and a pt2 archive holding a
    record that is neither text, JSON nor tensors; nothing of the model is built then.
    """
    model_dir = Path(model_dir)
    mlmodel = _read_mlmodel(model_dir)
    flavor = mlmodel["flavors"]["pytorch"]
    if flavor.get("code"):
        raise ConfigError(
            f"Model folder {model_dir}: its MLmodel ships code ({flavor['code']!r}) that loading would put on the "
            "import path; tunedag loads only models saved without code; refused"
        )
    data = (model_dir / str(flavor.get("model_data", "data"))).resolve()
    if model_dir.resolve() not in data.parents:
        raise ConfigError(
            f"Model folder {model_dir}: its MLmodel names model data {flavor.get('model_data')!r} outside the folder"
        )
    if (data / "model.pth").exists() or not (data / "model.pt2").is_file():
        raise ConfigError(
            f"Model folder {model_dir} is not a PyTorch model saved with torch.export (data/model.pt2); a pickled "
            "model (model.pth) runs code when read, so tunedag does not load it; refused"
        )
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    with _SWITCH_LOCK:
        saved = os.environ.get(PICKLE_SWITCH)
        os.environ[PICKLE_SWITCH] = "false"
        try:
            module = mlflow.pytorch.load_model(str(model_dir))
        except MlflowException as exc:
            raise ConfigError(f"Model folder {model_dir} cannot be loaded safely: {exc.message}; refused") from None
        except Exception as exc:  # a damaged folder or archive (its records were checked first)
            raise ConfigError(
                f"Model folder {model_dir} is not a PyTorch model tunedag can read: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            if saved is None:
                os.environ.pop(PICKLE_SWITCH, None)
            else:
                os.environ[PICKLE_SWITCH] = saved
    return module, mlmodel.get("metadata") or {}


def _read_mlmodel(model_dir: Path) -> dict:
    try:
        mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8")) or {}
        if not isinstance(mlmodel["flavors"]["pytorch"], dict):
            raise TypeError("its flavors.pytorch is not a mapping")
    except (OSError, KeyError, TypeError, AttributeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"Model folder {model_dir} is not an MLflow PyTorch model tunedag can read: {exc}") from None
    return mlmodel
