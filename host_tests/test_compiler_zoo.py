"""Whole networks of the zoo: packed from the zoo name and from ONNX files exported by torch (both exporters),
and the int8 program run on the numpy reference against onnxruntime on the PPS-projected float model."""
import warnings

import numpy as np
import onnx
import pytest

from sps_pynq import model_file, zoo
from sps_pynq.compiler import compile_model, pack, project_onnx
from sps_pynq.compiler.testing import cosine, ort_run, run_reference
from sps_pynq.hw.descriptor import Op

pytestmark = pytest.mark.slow


def quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{(name, dynamo): path} exported once per module."""
    folder = tmp_path_factory.mktemp("onnx")
    cache = {}

    def get(name, dynamo=False):
        if (name, dynamo) not in cache:
            path = folder / f"{name}_{int(dynamo)}.onnx"
            quiet(zoo.export_onnx, zoo.build(name), path, zoo.input_shape(name), dynamo=dynamo)
            cache[name, dynamo] = str(path)
        return cache[name, dynamo]
    return get


EXPECTED = {  # (layers, CONV layers, ADD layers)
    "vgg16": (19, 14, 0),
    "resnet18": (30, 21, 8),
    "resnet20": (32, 22, 9),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pack_zoo_model(name, tmp_path):
    out = tmp_path / f"{name}.spsmodel"
    program = quiet(pack, name, out, pps=(8, 4), num_calib=4)
    loaded = model_file.load(out)
    assert loaded.image == program.image and loaded.metadata["source"] == f"zoo:{name}"
    descs = loaded.descriptors()
    ops = [d.op for d in descs]
    assert (len(descs), ops.count(Op.CONV), ops.count(Op.ADD)) == EXPECTED[name]
    pps_layers = [d for d in descs if d.op == Op.CONV and d.pps]
    assert pps_layers and all(d.kh == 3 for d in pps_layers)
    # the model's table (fill_rows, the default, may store merged or shared classes: metadata "encoded")
    metas = [m for m in loaded.metadata["layers"] if m["op"] == "CONV" and m.get("masks")]
    assert metas and all((m["P"], m["K"]) == (8, 4) for m in metas)
    assert all((d.patterns, d.nnz) == ((m.get("encoded") or {}).get("P", 8), (m.get("encoded") or {}).get("K", 4))
               for d, m in zip(pps_layers, metas)) and len(pps_layers) == len(metas)
    # 1x1 shortcuts and the classifier stay dense
    assert all(not d.pps for d in descs if d.op == Op.CONV and d.kh != 3)
    sparse, dense = loaded.conv_macs()
    assert 1.5 < dense / sparse < 9 / 4 + 1e-9


@pytest.mark.parametrize("dynamo", [False, True])
def test_resnet20_from_onnx_matches_onnxruntime(exported, dynamo):
    path = exported("resnet20", dynamo)
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    program = compile_model(path, calib=calib)
    floats = project_onnx(path)
    onnx.checker.check_model(floats)
    for _ in range(3):
        x = rng.standard_normal((3, 32, 32)).astype(np.float32)
        want = ort_run(floats, x[None])[0].ravel()
        got = run_reference(program, x)[0].ravel()
        assert cosine(got, want) > 0.99 and got.argmax() == want.argmax()


@pytest.mark.parametrize("name,dynamo", [("vgg16", False), ("resnet18", False), ("vgg16", True)])
def test_pack_from_torch_exports(exported, name, dynamo, tmp_path):
    program = quiet(pack, exported(name, dynamo), tmp_path / "m.spsmodel", num_calib=2)
    assert program.num_layers == EXPECTED[name][0]
    assert program.outputs[0].shape == (10, 1, 1)


def test_torch_module_input():
    program = quiet(compile_model, zoo.build("mnist_cnn"), input_shape=zoo.input_shape("mnist_cnn"), num_calib=2)
    assert program.inputs[0].shape == (1, 28, 28)


def test_pruned_model_keeps_its_tables(tmp_path):
    """A model pruned by sps_pynq.prune to PPS(4, 2) and exported keeps exactly those tables under --pps 8x4."""
    from sps_pynq import prune
    model = zoo.build("resnet20")
    quiet(prune.prune_pps, model, P=4, K=2)
    path = tmp_path / "pruned.onnx"
    infos = quiet(prune.export_onnx, model, str(path), zoo.input_shape("resnet20"), keep_batchnorm=True)
    program = quiet(compile_model, str(path), pps=(8, 4), num_calib=2)
    by_name = {m["name"]: m for m in program.metadata["layers"]}
    three = [n for n, info in infos.items() if n in by_name and by_name[n]["mode"] != "dense"]
    assert len(three) == 19
    for name in three:
        meta = by_name[name]
        assert (meta["mode"], meta["K"], meta["energy_kept"]) == ("detected", 2, 1.0)
        assert meta["masks"] == infos[name].masks
