"""HDF5 fixtures for tests/hdf5_test.cpp and tests/keras_h5_test.cpp, written with h5py as Keras's
own saving code writes them (attributes set from Python lists, datasets made with
create_dataset(name, shape, dtype) at "<layer>/<weight>:0" inside each layer's group), and a
dump of files Kiln writes, for the tests to check with h5py's eyes.

Usage: python3 keras_h5_fixtures.py keras PATH [OPTION...]   a Keras 2 weights file
       python3 keras_h5_fixtures.py keras3multi PATH          Keras 3, several layers per class
       python3 keras_h5_fixtures.py attrs PATH                the wrapper's odd attributes
       python3 keras_h5_fixtures.py dump PATH                 prints a file's layout and values
       python3 keras_h5_fixtures.py JOB + JOB + ...           several of the above in one run

The Keras file holds the weights of the tests' model: Conv2D 'conv' (3x3, 2 -> 4 channels),
BatchNormalization 'bn', Flatten 'flat', Dense 'fc' (36 -> 3). Weight i of layer k holds
100*k + 10*i + 0.01*j at flat position j, so a test can tell every value's place.
"""
import json
import sys

import h5py
import numpy as np

LAYERS = [
    ("conv", [("kernel", (3, 3, 2, 4)), ("bias", (4,))]),
    ("bn", [("gamma", (4,)), ("beta", (4,)), ("moving_mean", (4,)), ("moving_variance", (4,))]),
    ("flat", []),
    ("fc", [("kernel", (36, 3)), ("bias", (3,))]),
]
# Keras 2.0's automatic names (the 2017 files): another name for every layer.
KERAS20 = {"conv": "conv2d_1", "bn": "batch_normalization_1", "flat": "flatten_1", "fc": "dense_1"}


def values(k, i, shape):
    n = int(np.prod(shape))
    return (100.0 * k + 10.0 * i + 0.01 * np.arange(n)).reshape(shape)


def string_attr(obj, name, items, strings):
    """Sets a list-of-strings attribute the way the given writer does."""
    if strings == "fixed":  # h5py 2 / numpy 'S' arrays: fixed length, NUL padded
        obj.attrs[name] = np.array([s.encode() for s in items], dtype="S")
    elif strings == "utf8":
        obj.attrs.create(name, items, dtype=h5py.string_dtype("utf-8"))
    elif len(items) == 0:  # h5py 3 writes [] as float64 of shape (0,)
        obj.attrs[name] = []
    else:  # h5py 3 (tf.keras >= 2.4): variable-length ASCII bytes
        obj.attrs.create(name, [s.encode() for s in items], dtype=h5py.string_dtype("ascii"))


def keras(path, opts):
    strings = next((o.split("=")[1] for o in opts if o.startswith("strings=")), "vlen")
    fc_units = int(next((o.split("=")[1] for o in opts if o.startswith("fcunits=")), "3"))
    drop = [o.split("=")[1] for o in opts if o.startswith("drop=")]
    f = h5py.File(path, "w")
    if "keras3" in opts:
        # Keras 3's .weights.h5 tree: layers/<snake-case class>[_k]/vars/<i>, named by place.
        classes = {"conv": "conv2d", "bn": "batch_normalization", "flat": "flatten", "fc": "dense"}
        for k, (name, weights) in enumerate(LAYERS):
            if name in drop:
                continue
            group = f.create_group(f"layers/{classes[name]}/vars")
            for i, (w, shape) in enumerate(weights):
                if name == "fc":
                    shape = (36, fc_units) if w == "kernel" else (fc_units,)
                group.create_dataset(str(i), data=values(k, i, shape).astype("<f4"))
        f.create_group("vars")
        f.create_group("optimizer/vars").create_dataset("0", data=np.zeros((), "<i8"))
        f.close()
        return
    root = f
    if "full" in opts:  # model.save("m.h5"): the weights live in model_weights
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
        f.attrs["keras_version"] = "2.11.0"
        f.attrs["backend"] = "tensorflow"
        root = f.create_group("model_weights")
        string_attr(f.create_group("optimizer_weights"), "weight_names", [], "vlen")
    layers = []
    for k, (name, weights) in enumerate(LAYERS):
        if name in drop:
            continue
        if name == "bn" and "bnnoscale" in opts:
            weights = weights[1:]
        if name == "fc":
            weights = [("kernel", (36, fc_units)), ("bias", (fc_units,))]
        layers.append((k, KERAS20[name] if "keras20" in opts else name, weights))
    if "extra" in opts:
        layers.append((9, "extra", [("kernel", (2, 2))]))
    names = [name for _, name, _ in layers]
    if "ghost" in opts:
        names.append("ghost")
    if "chunk" in opts:  # as Keras splits long lists: layer_names0, layer_names1, ...
        for c, part in enumerate(np.array_split(np.array(names), 2)):
            string_attr(root, f"layer_names{c}", [str(p) for p in part], "fixed")
    elif "nolayernames" not in opts:  # (a model_weights group without its list: not Keras's)
        string_attr(root, "layer_names", names, strings)
    root.attrs["backend"] = "tensorflow"
    if "nokerasversion" not in opts:
        root.attrs["keras_version"] = "1" if "keras1" in opts else "2.11.0"
    for k, name, weights in sorted(layers, key=lambda entry: entry[1]):
        group = root.create_group(name)
        colon = "" if "nocolon" in opts else ":0"
        weight_names = [f"{name}/{w}{colon}" for w, _ in weights]
        if "chunk" in opts and len(weight_names) > 1:
            string_attr(group, "weight_names0", weight_names[:1], "fixed")
            string_attr(group, "weight_names1", weight_names[1:], "fixed")
        elif "emptyvlen" in opts and not weight_names:
            group.attrs.create("weight_names", [], dtype=h5py.string_dtype("ascii"))
        else:
            string_attr(group, "weight_names", weight_names, strings)
        for i, (w, shape) in enumerate(weights):
            ds_name = weight_names[i]
            dtype = "<f8" if "f64" in opts else (">f4" if "bigendian" in opts else "<f4")
            if name == "conv" and w == "bias" and "missing" in opts:
                continue
            if name == "conv" and w == "bias" and "softlink" in opts:
                group[ds_name] = h5py.SoftLink(f"{group.name}/{name}/kernel{colon}")
                continue
            if name == "conv" and w == "bias" and "intdata" in opts:
                group.create_dataset(ds_name, data=np.arange(4, dtype="<i4"))
                continue
            if name == "conv" and w == "bias" and "external" in opts:
                raw = path + ".raw"
                values(k, i, shape).astype("<f4").tofile(raw)
                group.create_dataset(ds_name, shape, dtype="<f4", external=[(raw, 0, 16)])
                continue
            if name == "fc" and w == "kernel" and "huge" in opts:
                # 10^12 elements declared, nothing stored: the file stays small.
                group.create_dataset(ds_name, (1000000, 1000000), dtype="<f4", chunks=(1000, 1000),
                                     fillvalue=1.0)
                continue
            compression = "gzip" if "deflate" in opts and w == "kernel" else None
            ds = group.create_dataset(ds_name, shape, dtype=dtype, compression=compression)
            ds[...] = values(k, i, shape)
    string_attr(root.create_group("top_level_model_weights"), "weight_names", [], strings)
    f.close()


# keras3multi: the .weights.h5 of a model with several layers of a class, interleaved, so that
# Keras 3's per-class counters (conv2d, conv2d_1, ...) matter; same-class layers of the same
# shapes, so that only the values tell them apart. On 4x4x2 samples: Conv2D 3x3 2 -> 3, BN,
# Conv2D 1x1 3 -> 3, BN, Flatten, Dense 12 -> 4, Dense 4 -> 4, Dense 4 -> 4. Weight i of layer k
# holds values(k, i, shape), as in the Keras 2 fixture.
KERAS3_MULTI = [
    ("conv2d", [(3, 3, 2, 3), (3,)]),
    ("batch_normalization", [(3,)] * 4),
    ("conv2d_1", [(1, 1, 3, 3), (3,)]),
    ("batch_normalization_1", [(3,)] * 4),
    ("flatten", []),
    ("dense", [(12, 4), (4,)]),
    ("dense_1", [(4, 4), (4,)]),
    ("dense_2", [(4, 4), (4,)]),
]


def keras3multi(path):
    f = h5py.File(path, "w")
    for k, (name, shapes) in enumerate(KERAS3_MULTI):
        group = f.create_group(f"layers/{name}/vars")
        for i, shape in enumerate(shapes):
            group.create_dataset(str(i), data=values(k, i, shape).astype("<f4"))
    f.create_group("vars")
    f.close()


def attrs(path):
    f = h5py.File(path, "w")
    g = f.create_group("g")
    g.create_group("sub")
    f.create_group("a")
    string_attr(g, "vlen", ["conv", "bn", "dense_1"], "vlen")
    string_attr(g, "utf8", ["caf\u00e9", "x"], "utf8")
    g.attrs["fixed"] = np.array([b"ab", b"abcd", b""], dtype="S4")  # "abcd" fills its 4 bytes
    g.attrs["scalar"] = "tensorflow"
    g.attrs["empty_f64"] = []
    g.attrs.create("empty_vlen", [], dtype=h5py.string_dtype("ascii"))
    g.attrs["numbers"] = np.array([1.5, 2.5])
    g.attrs["matrix"] = np.array([[b"a", b"b"], [b"c", b"d"]], dtype="S1")
    string_attr(g, "part0", ["a", "b"], "fixed")
    string_attr(g, "part1", ["c"], "vlen")
    g.create_dataset("f32", data=np.arange(6, dtype="<f4").reshape(2, 3))
    g.create_dataset("f64be", data=np.arange(3, dtype=">f8"))
    g.create_dataset("i32", data=np.array([7, -8], dtype="<i4"))
    g.create_dataset("u8", data=np.array([1, 2], dtype="u1"))
    g.create_dataset("scalar_ds", data=np.float32(4.5))
    g.create_dataset("text", data=np.array([b"x"], dtype="S1"))
    g["soft"] = h5py.SoftLink("/g/f32")
    f["ext"] = h5py.ExternalLink("other.h5", "/x")
    f.close()


def dump(path):
    f = h5py.File(path, "r")

    def text(v):
        if isinstance(v, bytes):
            return v.decode()
        if isinstance(v, np.ndarray):
            return [text(x) for x in v.tolist()]
        return v

    def visit(name, obj):
        for key in sorted(obj.attrs):
            value = obj.attrs[key]
            kind = getattr(value, "dtype", None)
            print(f"attr /{name} {key} = {text(value)!r} {kind}")
        if isinstance(obj, h5py.Dataset):
            flat = [round(float(v), 4) for v in np.asarray(obj).reshape(-1)]
            print(f"dataset /{name} {obj.dtype.str} {obj.shape} {flat}")

    visit("", f)
    f.visititems(visit)
    f.close()


def main(args):
    case, target = args[0], args[1]
    if case == "keras":
        keras(target, args[2:])
    elif case == "keras3multi":
        keras3multi(target)
    elif case == "attrs":
        attrs(target)
    elif case == "dump":
        dump(target)
    else:
        sys.exit(f"unknown case {case}")


if __name__ == "__main__":
    # Several jobs in one run (importing h5py is most of a run's time): JOB + JOB + ...
    job = []
    for arg in sys.argv[1:] + ["+"]:
        if arg == "+":
            main(job)
            job = []
        else:
            job.append(arg)
