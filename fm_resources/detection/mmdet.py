"""The `mmdet` detector backend: any mmdet 3.x config + checkpoint, batched over the frames of a clip.

    det = MMDetDetector("rtmdet_tiny_8xb32-300e_coco", "https://download.openmmlab.com/.../rtmdet_tiny_....pth")
    per_frame = det.detect_clip(frames)  # frames: RGB uint8 arrays of one clip -> one Detections per frame

- config: a path to a config file, or the name of a config shipped with mmdet ("rtmdet_tiny_8xb32-300e_coco",
  also "mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py"), looked up in mmdet's packaged `.mim/configs`.
- checkpoint: a local path or an http(s) URL (loaded by mmengine's CheckpointLoader, which downloads into the
  torch hub cache; that only works where the machine has internet). Loading uses torch's weights_only unpickler
  (torch >= 2.6's default), allowing also the numpy values and mmengine HistoryBuffers that mmengine Runner
  checkpoints hold; checkpoints with other Python objects need trust_checkpoint=True (full pickle: trusted files only).
- Everything that can be wrong with the configuration (config missing or broken, checkpoint missing, not a torch
  checkpoint, a head that does not fit the config, an unknown class or device) raises `DetectorConfigError` from
  the constructor (`validate()`), before any video is decoded.
- Class names come from the checkpoint's meta (`dataset_meta['classes']`, as mmdet saves them), else from the
  config's dataset metainfo (when its length fits the head), else COCO's names for an 80-class head, else class_<i>.
- Inference does what mmdet.apis.inference_detector does (the config's test pipeline, starting with
  LoadImageFromNDArray, on BGR copies of the frames; ground-truth loaders dropped), except that it runs ONE
  model.test_step per `batch_size` frames (inference_detector loops test_step image by image), in inference_mode.
  Boxes are clipped to the frame; boxes scoring below `score_thr` are dropped (the model's own test_cfg.score_thr
  is raised to it, which saves NMS and mask work without changing which boxes survive).
- Models that predict instance masks (RTMDet-Ins, Mask R-CNN, ...) give COCO RLE masks; others masks=None.
- Text-prompted models (Grounding DINO, GLIP) get `text_prompt` ("person . car . dog"), or else `classes`, or
  else the class names above, as custom entities (no NLTK noun-phrase parsing, which would need a download).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fm_assets.labels.types import Detections
from fm_resources.detection import types
from fm_resources.settings import environment

log = logging.getLogger(__name__)

_URL = re.compile(r"^https?://", re.IGNORECASE)
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
# pipeline steps that load ground truth: useless (and sometimes failing) at inference on bare arrays
_ANNOTATION_LOADERS = {"LoadAnnotations", "LoadPanopticAnnotations", "LoadTrackAnnotations", "LoadTextAnnotations"}


class DetectorConfigError(types.DetectorConfigError):
    """The detector's configuration cannot work; `path` is the offending file/URL/value, `reason` says why.

    A subclass of the project-wide fm_resources.detection.types.DetectorConfigError (a ValueError), so one `except`
    catches every backend's."""

    def __init__(self, what: str, path: object, reason: str) -> None:
        self.what, self.path, self.reason = what, str(path), reason
        super().__init__(f"mmdet detector: bad {what} {self.path!r}: {reason}")


# ---------------------------------------------------------------------------------------------------------------
# config and checkpoint files


def packaged_configs_dir() -> Path:
    import mmdet

    return Path(mmdet.__file__).parent / ".mim" / "configs"


def resolve_config(config: str | os.PathLike) -> Path:
    """A config file path, or the name of one of mmdet's packaged configs, as an existing file."""
    text = os.fspath(config)
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    root = packaged_configs_dir()
    if text.startswith("mmdet::"):
        candidate = root / text[len("mmdet::"):]
        if candidate.is_file():
            return candidate
        raise DetectorConfigError("config", text, f"not found in mmdet's packaged configs ({root})")
    if "/" in text or os.sep in text:
        raise DetectorConfigError("config", text, "no such file")
    stem = text[:-3] if text.endswith(".py") else text
    matches = sorted(p for p in root.rglob(f"{stem}.py") if "_base_" not in p.parts) if root.is_dir() else []
    if not matches:
        raise DetectorConfigError(
            "config", text, f"no such file, and no config named {stem!r} ships with mmdet (searched {root})")
    if len(matches) > 1:
        log.warning("config name %r matches %d packaged configs; using %s", stem, len(matches), matches[0])
    return matches[0]


def _safe_checkpoint_globals() -> list:
    """Types found in mmengine/mmdet checkpoints that torch.load(weights_only=True) must be allowed to rebuild.

    torch >= 2.6 loads with weights_only=True by default, and mmengine 0.10.7 calls torch.load without saying
    otherwise; a Runner checkpoint holds numpy scalars/arrays and mmengine HistoryBuffers (in its message_hub).
    """
    allowed: list = [np.ndarray, np.dtype]
    allowed += [type(np.dtype(t)) for t in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
                                            "f2", "f4", "f8", "c8", "c16", "U", "S")]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            mod = __import__(module, fromlist=["_reconstruct", "scalar"])
        except ImportError:
            continue
        # numpy 2 pickles arrays as numpy._core.multiarray._reconstruct; files from numpy 1 say numpy.core...
        allowed += [(mod._reconstruct, f"{module}._reconstruct"), (mod.scalar, f"{module}.scalar")]
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:  # pragma: no cover
        return allowed

    statistics = {k for k, v in vars(HistoryBuffer).items() if not k.startswith("_") and callable(v)}

    def history_buffer_getattr(obj, name):
        # a HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, "mean"); allow only that
        # (the unpickler never calls what getattr returns: REDUCE only calls allowlisted functions)
        if (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) and name in statistics:
            return getattr(obj, name)
        raise pickle.UnpicklingError(f"getattr({type(obj).__name__}, {name!r}) is not allowed in a checkpoint")

    allowed += [HistoryBuffer, (history_buffer_getattr, "builtins.getattr")]
    return allowed


def load_checkpoint_file(checkpoint: str | os.PathLike, trust: bool = False) -> dict:
    """Load a checkpoint (local path or http(s) URL) into a dict on the CPU, or raise DetectorConfigError.

    Loads with torch's weights_only unpickler (plus the numpy/mmengine types mmdet checkpoints hold); `trust=True`
    allows full pickle for checkpoints that hold other Python objects (only for files you trust).
    """
    import torch
    from mmengine.runner import CheckpointLoader

    text = os.fspath(checkpoint)
    is_url = bool(_URL.match(text))
    if not is_url:
        path = Path(text).expanduser()
        if not path.exists():
            raise DetectorConfigError("checkpoint", text, "no such file")
        if not path.is_file():
            raise DetectorConfigError("checkpoint", text, "not a file")
        text = str(path)
    # mmengine calls torch.load without weights_only: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD flips its default for the call
    unsafe_load = environment("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1") if trust else contextlib.nullcontext()
    try:
        with unsafe_load, warnings.catch_warnings(), torch.serialization.safe_globals(_safe_checkpoint_globals()):
            warnings.simplefilter("ignore", UserWarning)
            ckpt = CheckpointLoader.load_checkpoint(text, map_location="cpu", logger="silent")
    except DetectorConfigError:
        raise
    except Exception as e:
        msg = f"{type(e).__name__}: {e}".strip()
        if "Weights only load failed" in msg or "weights_only" in msg:
            unsafe = re.findall(r"Unsupported global: GLOBAL ([\w.]+)", msg)
            raise DetectorConfigError(
                "checkpoint", checkpoint,
                "it holds Python objects that torch's safe loader refuses"
                + (f" ({', '.join(unsafe)})" if unsafe else "")
                + "; if you trust the file, pass trust_checkpoint=True") from e
        if is_url:
            reason = f"could not download or read it ({msg.splitlines()[0][:300]})"
        else:
            reason = f"not a torch checkpoint (torch.load failed: {msg.splitlines()[0][:300]})"
        raise DetectorConfigError("checkpoint", checkpoint, reason) from e
    if not isinstance(ckpt, dict):
        raise DetectorConfigError("checkpoint", checkpoint, f"holds a {type(ckpt).__name__}, not a dict of weights")
    return ckpt


def _state_dict(ckpt: dict, checkpoint: str) -> dict:
    import torch

    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict):
        raise DetectorConfigError("checkpoint", checkpoint, "its 'state_dict' is not a dict of tensors")
    state = {k[len("module."):] if k.startswith("module.") else k: v
             for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise DetectorConfigError("checkpoint", checkpoint, "holds no weight tensors")
    return state


def build_random_model(config: str | os.PathLike, cfg_options: dict | None = None, seed: int = 0):
    """The model of an mmdet config with random weights (seeded; the backbone's pretrained download switched off):
    for tests and benchmarks on machines that cannot download weights."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(str(resolve_config(config)))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.backbone.init_cfg = None  # no pretrained download
    init_default_scope("mmdet")
    torch.manual_seed(seed)
    return MODELS.build(cfg.model).eval()


def save_checkpoint(model, path: str | os.PathLike, classes: Sequence[str] | None = ("person",), **extra) -> str:
    """Save a model as mmengine's Runner does: meta (with dataset_meta's class names, unless None) and state_dict,
    plus whatever else is given."""
    from mmengine.runner.checkpoint import save_checkpoint as mmengine_save
    from mmengine.runner.checkpoint import weights_to_cpu

    meta: dict = {"mmengine_version": "0.10.7", "epoch": 1, "iter": 10}
    if classes is not None:
        meta["dataset_meta"] = {"classes": tuple(classes), "palette": [(220, 20, 60)] * len(classes)}
    mmengine_save({"meta": meta, "state_dict": weights_to_cpu(model.state_dict()), **extra}, str(path))
    return str(path)


# ---------------------------------------------------------------------------------------------------------------
# masks


def encode_masks(masks: np.ndarray) -> list[dict]:
    """(N, H, W) bool/uint8 masks -> N COCO RLEs {"size": [H, W], "counts": str}."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    fortran = np.asfortranarray(np.transpose(masks.astype(np.uint8), (1, 2, 0)))  # (H, W, N), column-major
    rles = mask_utils.encode(fortran)
    return [{"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")} for r in rles]


def decode_mask(rle: dict) -> np.ndarray:
    """A COCO RLE from `encode_masks` back to an (H, W) bool array."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


# ---------------------------------------------------------------------------------------------------------------
# the detector


class MMDetDetector:
    """Detector protocol over an mmdet 3.x model (see the module docstring)."""

    def __init__(
        self,
        config: str | os.PathLike,
        checkpoint: str | os.PathLike,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        score_thr: float = 0.3,
        text_prompt: str | None = None,
        classes: Sequence[str] | None = None,
        cfg_options: dict | None = None,
        trust_checkpoint: bool = False,
        fp16: bool = False,
        lazy: bool = False,
    ) -> None:
        """Resolve and check everything; with lazy=False (default) also load the checkpoint and build the model.

        cfg_options: mmengine-style overrides merged into the config ({"model.bbox_head.num_classes": 3}).
        lazy=True: only cheap checks now (config resolves, checkpoint file exists); `validate()` does the rest.
        fp16=True (CUDA only): inference under torch.autocast(float16): the layers that are safe in half precision
        (convolutions, matmuls) run in it, the rest (NMS, softmax, box decoding) in float32.
        """
        self.config_path = resolve_config(config)
        self.checkpoint = os.fspath(checkpoint)
        self.name = f"mmdet:{self.config_path.stem}"
        self.device = str(device)
        if not _DEVICE.match(self.device):
            raise DetectorConfigError("device", device, "expected 'cpu', 'cuda' or 'cuda:N'")
        if int(batch_size) < 1:
            raise DetectorConfigError("batch_size", batch_size, "must be at least 1")
        if not 0.0 <= float(score_thr) <= 1.0:
            raise DetectorConfigError("score_thr", score_thr, "must be in [0, 1]")
        if fp16 and not self.device.startswith("cuda"):
            raise DetectorConfigError("fp16", fp16, "half precision needs a CUDA device (device='cuda')")
        self.fp16 = bool(fp16)
        self.batch_size = int(batch_size)
        self.score_thr = float(score_thr)
        self.text_prompt = text_prompt.strip() if text_prompt and text_prompt.strip() else None
        self.keep_classes = list(classes) if classes else None
        self.cfg_options = dict(cfg_options or {})
        self.trust_checkpoint = bool(trust_checkpoint)
        if not _URL.match(self.checkpoint) and not Path(self.checkpoint).expanduser().is_file():
            raise DetectorConfigError("checkpoint", self.checkpoint, "no such file")

        self.model = None
        self.cfg = None
        self.class_names: list[str] = []
        self.is_text_prompted = False
        self._pipeline = None
        self._prompt: str | None = None
        if not lazy:
            self.validate()

    # -- set-up ------------------------------------------------------------------------------------------------

    def validate(self) -> MMDetDetector:
        """Load config and checkpoint, build the model and check they fit; raises DetectorConfigError. Idempotent."""
        if self.model is not None:
            return self
        import torch

        if self.device.startswith("cuda"):
            index = int(self.device.split(":")[1]) if ":" in self.device else 0
            if not torch.cuda.is_available() or index >= torch.cuda.device_count():
                raise DetectorConfigError("device", self.device, "CUDA is not available on this machine")
        cfg = self._load_config()
        ckpt = load_checkpoint_file(self.checkpoint, trust=self.trust_checkpoint)
        state = _state_dict(ckpt, self.checkpoint)
        model = self._build_model(cfg)
        self._load_weights(model, state)

        self.is_text_prompted = hasattr(model, "language_model")
        num_classes = None if self.is_text_prompted else _head_num_classes(model)
        self.class_names = self._class_names(ckpt.get("meta") or {}, cfg, num_classes)
        if self.keep_classes and not self.is_text_prompted:
            unknown = [c for c in self.keep_classes if c not in self.class_names]
            if unknown:
                raise DetectorConfigError(
                    "classes", unknown, f"not among the model's classes ({', '.join(self.class_names[:20])}"
                    + (", ..." if len(self.class_names) > 20 else "") + ")")
        if self.is_text_prompted:
            entities = ([e.strip() for e in self.text_prompt.strip(" .").split(" . ") if e.strip()]
                        if self.text_prompt else (self.keep_classes or self.class_names))
            self._prompt = " . ".join(entities) + " ."
        model.dataset_meta = {"classes": tuple(self.class_names)}
        model.cfg = cfg
        model.to(self.device)
        model.eval()
        self._pipeline = self._build_pipeline(cfg)
        self.cfg, self.model = cfg, model
        return self

    def _load_config(self):
        from mmengine.config import Config

        try:
            cfg = Config.fromfile(str(self.config_path))
            if self.cfg_options:
                cfg.merge_from_dict(self.cfg_options)
        except Exception as e:
            raise DetectorConfigError("config", self.config_path, f"cannot be loaded ({type(e).__name__}: {e})") from e
        if not isinstance(cfg.get("model"), dict) or "type" not in cfg.model:
            raise DetectorConfigError("config", self.config_path, "defines no `model = dict(type=...)`")
        try:
            _test_dataset(cfg)["pipeline"]
        except Exception:
            raise DetectorConfigError("config", self.config_path,
                                      "defines no test pipeline (test_dataloader.dataset.pipeline)") from None
        # never fetch pretrained backbone weights: the checkpoint provides all weights
        if isinstance(cfg.model.get("backbone"), dict) and "init_cfg" in cfg.model.backbone:
            cfg.model.backbone.init_cfg = None
        # the model need not keep boxes below our threshold (fewer boxes -> less NMS and mask work)
        if isinstance(cfg.model.get("test_cfg"), dict):
            _raise_score_thr(cfg.model.test_cfg, self.score_thr)
        return cfg

    def _build_model(self, cfg):
        from mmdet.registry import MODELS
        from mmengine.model.utils import revert_sync_batchnorm
        from mmengine.registry import init_default_scope

        scope = cfg.get("default_scope", "mmdet")
        if scope is not None:
            init_default_scope(scope)
        try:
            model = revert_sync_batchnorm(MODELS.build(cfg.model))
        except Exception as e:
            raise DetectorConfigError(
                "config", self.config_path, f"its model cannot be built ({type(e).__name__}: {e})") from e
        if self.device == "cpu":
            from mmcv.ops import RoIPool

            if any(isinstance(m, RoIPool) for m in model.modules()):
                raise DetectorConfigError("device", "cpu",
                                          f"{self.config_path.name} uses RoIPool, which has no CPU kernel")
        return model

    def _load_weights(self, model, state: dict) -> None:
        """Load the weights after checking that they fit the model built from the config."""
        own = model.state_dict()
        mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs config {tuple(v.shape)}"
                      for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
        if mismatched:
            raise DetectorConfigError(
                "checkpoint", self.checkpoint,
                f"its weights do not fit {self.config_path.name} ({len(mismatched)} tensors differ in shape, e.g. "
                + "; ".join(mismatched[:3]) + "); a different num_classes or model size?")
        shared = [k for k in own if k in state]
        if not shared:
            raise DetectorConfigError(
                "checkpoint", self.checkpoint,
                f"none of its {len(state)} tensors belong to the model of {self.config_path.name} "
                "(a checkpoint of another architecture?)")
        missing = [k for k in own if k not in state]
        head_missing = [k for k in missing
                        if k.split(".")[0].endswith("head") and not k.endswith("num_batches_tracked")]
        if head_missing:
            raise DetectorConfigError(
                "checkpoint", self.checkpoint,
                f"it lacks {len(head_missing)} weights of the detection head of {self.config_path.name}, e.g. "
                + ", ".join(head_missing[:3]))
        if missing:
            log.warning("%s: %d model weights are not in the checkpoint (kept at init), e.g. %s",
                        self.name, len(missing), ", ".join(missing[:3]))
        model.load_state_dict(state, strict=False)

    def _class_names(self, meta: dict, cfg, num_classes: int | None) -> list[str]:
        names = None
        source = ""
        dataset_meta = {str(k).lower(): v for k, v in (meta.get("dataset_meta") or {}).items()}
        if dataset_meta.get("classes"):
            names, source = dataset_meta["classes"], "checkpoint meta dataset_meta['classes']"
        elif meta.get("CLASSES"):  # mmdet 2.x checkpoints
            names, source = meta["CLASSES"], "checkpoint meta CLASSES"
        else:
            names = _config_classes(cfg)
            source = "config metainfo"
            if names is not None and num_classes is not None and len(names) != num_classes:
                names = None
            if names is None and num_classes == 80:
                from mmdet.evaluation import get_classes

                names, source = get_classes("coco"), "COCO (80-class head)"
        if names is None:
            if num_classes is None:
                raise DetectorConfigError("checkpoint", self.checkpoint, "no class names in its meta or the config")
            log.warning("%s: no class names in checkpoint or config; using class_0..class_%d",
                        self.name, num_classes - 1)
            return [f"class_{i}" for i in range(num_classes)]
        names = [str(n) for n in (names.split(",") if isinstance(names, str) else names)]
        if num_classes is not None and len(names) != num_classes:
            raise DetectorConfigError(
                "checkpoint", self.checkpoint,
                f"{source} lists {len(names)} classes but the head of {self.config_path.name} has {num_classes}")
        return names

    def _build_pipeline(self, cfg):
        from mmcv.transforms import Compose
        from mmdet.utils import get_test_pipeline_cfg

        steps = [s.copy() for s in get_test_pipeline_cfg(cfg.copy())]
        steps = [s for s in steps if str(s.get("type", "")).split(".")[-1] not in _ANNOTATION_LOADERS]
        # frames arrive as arrays, not files ("mmdet." so that the type resolves from any default scope)
        loaders = [i for i, s in enumerate(steps) if "LoadImage" in str(s.get("type", ""))]
        if loaders:
            steps[loaders[0]] = {"type": "mmdet.LoadImageFromNDArray"}
        else:
            steps.insert(0, {"type": "mmdet.LoadImageFromNDArray"})
        return Compose(steps)

    # -- inference ---------------------------------------------------------------------------------------------

    def detect_clip(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """One Detections per frame (RGB uint8, same size); frames go through the model batch_size at a time."""
        frames = list(frames)
        if not frames:
            return []
        h, w = _check_frames(frames)
        self.validate()
        result: list[Detections] = []
        for start in range(0, len(frames), self.batch_size):
            for sample in self._infer(frames[start:start + self.batch_size]):
                result.append(self._to_detections(sample, h, w))
        return result

    def _infer(self, frames: list[np.ndarray]) -> list:
        """Like mmdet.apis.inference_detector, but one test_step for the whole batch (it loops image by image)."""
        import torch

        inputs, samples = [], []
        for frame in frames:
            data = {"img": np.ascontiguousarray(frame[..., ::-1]), "img_id": 0}  # mmdet pipelines expect BGR
            if self._prompt is not None:
                data["text"] = self._prompt
                data["custom_entities"] = True
            data = self._pipeline(data)
            inputs.append(data["inputs"])
            samples.append(data["data_samples"])
        half = torch.autocast("cuda", dtype=torch.float16) if self.fp16 else contextlib.nullcontext()
        with torch.inference_mode(), half:
            return self.model.test_step({"inputs": inputs, "data_samples": samples})

    def _to_detections(self, sample, h: int, w: int) -> Detections:
        pred = sample.pred_instances
        scores = pred.scores.float().cpu().numpy()
        keep = scores >= self.score_thr
        if "label_names" in pred:  # text-prompted models name their boxes after the prompt's entities
            names = [str(n) for n in pred.label_names]
        else:
            names = [self.class_names[i] if 0 <= i < len(self.class_names) else str(i)
                     for i in pred.labels.cpu().numpy().tolist()]
        if self.keep_classes:
            keep &= np.array([n in self.keep_classes for n in names], dtype=bool)
        idx = np.flatnonzero(keep)
        boxes = pred.bboxes.tensor if hasattr(pred.bboxes, "tensor") else pred.bboxes  # mmdet box structures
        boxes = boxes.float().cpu().numpy()[idx].reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        masks = None
        if "masks" in pred:
            m = pred.masks
            m = m.to_ndarray() if hasattr(m, "to_ndarray") else m.cpu().numpy()
            m = m[idx]
            if m.shape[1:] != (h, w):  # masks are at the frame's size after rescale; be safe anyway
                import cv2

                m = np.stack([cv2.resize(x.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) for x in m]) \
                    if len(m) else np.zeros((0, h, w), np.uint8)
            masks = encode_masks(m > 0)
        return Detections(
            boxes=boxes,
            scores=np.clip(scores[idx], 0.0, 1.0),
            labels=[names[i] for i in idx],
            masks=masks,
            extra={"label_id": pred.labels.cpu().numpy()[idx].astype(np.int32)},
        )


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _check_frames(frames: list[np.ndarray]) -> tuple[int, int]:
    first = frames[0]
    for i, f in enumerate(frames):
        if not isinstance(f, np.ndarray) or f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frame {i}: expected an RGB uint8 array (H, W, 3), got "
                             f"{getattr(f, 'dtype', type(f))} {getattr(f, 'shape', '')}")
        if f.shape != first.shape:
            raise ValueError(f"frame {i}: size {f.shape[:2]} differs from the clip's {first.shape[:2]}")
    return first.shape[0], first.shape[1]


def _test_dataset(cfg) -> dict:
    ds = cfg.test_dataloader.dataset
    while "pipeline" not in ds:
        ds = ds["dataset"] if "dataset" in ds else ds["datasets"][0]
    return ds


def _config_classes(cfg) -> list[str] | None:
    """Class names from the config: an explicit metainfo, else the METAINFO of the test dataset's class."""
    try:
        ds = cfg.test_dataloader.dataset
    except Exception:
        ds = None
    for metainfo in (cfg.get("metainfo"), ds.get("metainfo") if isinstance(ds, dict) else None):
        if isinstance(metainfo, dict) and metainfo.get("classes"):
            return list(metainfo["classes"])
    while isinstance(ds, dict):
        try:
            from mmdet.registry import DATASETS

            cls = DATASETS.get(ds.get("type"))
            classes = (getattr(cls, "METAINFO", None) or {}).get("classes")
            if classes:
                return list(classes)
        except Exception:
            pass
        ds = ds.get("dataset")
    return None


def _head_num_classes(model) -> int | None:
    head = getattr(model, "bbox_head", None)
    if head is None and getattr(model, "roi_head", None) is not None:
        head = getattr(model.roi_head, "bbox_head", None)
        if isinstance(head, (list, tuple)) or type(head).__name__ == "ModuleList":
            head = head[-1]
    n = getattr(head, "num_classes", None)
    return int(n) if n is not None else None


def _raise_score_thr(test_cfg: dict, thr: float) -> None:
    """Raise the model's own score thresholds (mmdet keeps scores > score_thr, we keep >= ours) to just below ours.

    Boxes below our threshold would be dropped anyway, and in greedy NMS a box's fate depends only on boxes that
    score higher, so the boxes that survive are the same; the model just does less NMS and mask work.
    """
    thr = thr - 1e-6
    for key, value in test_cfg.items():
        if key == "score_thr" and isinstance(value, (int, float)) and value < thr:
            test_cfg[key] = thr
        elif isinstance(value, dict):
            _raise_score_thr(value, thr)
