//! Importing PyTorch `.pth` checkpoints (torchvision state dicts, fastai `learn.save` files) without
//! executing anything: the pickle is parsed as data by candle's reader, and before any tensor is read every
//! class or function the pickle refers to is checked against a short list of what a state dict needs. A
//! checkpoint that refers to anything else (code objects, `os.system`, a pickled `Learner`) is refused.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::Path;

use candle_core::Tensor;
use candle_core::pickle::{Object, Stack};

use super::ModelError;

/// Classes and functions a plain state dict (or fastai's `{"model": …, "opt": …}`) refers to.
fn allowed(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        ("torch._utils", "_rebuild_tensor_v2")
            | ("torch._utils", "_rebuild_parameter")
            | ("torch._utils", "_rebuild_parameter_with_state")
            | ("collections", "OrderedDict")
            | ("torch", "Size")
    ) || (module == "torch" && name.ends_with("Storage"))
}

fn classes(obj: &Object, out: &mut Vec<(String, String)>) {
    match obj {
        Object::Class {
            module_name,
            class_name,
        } => out.push((module_name.clone(), class_name.clone())),
        Object::Tuple(v) | Object::List(v) => v.iter().for_each(|o| classes(o, out)),
        Object::Dict(kv) => kv.iter().for_each(|(k, v)| {
            classes(k, out);
            classes(v, out);
        }),
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            classes(callable, out);
            classes(args, out);
        }
        Object::PersistentLoad(o) => classes(o, out),
        _ => {}
    }
}

/// Refuses a checkpoint whose pickle refers to anything but tensors, storages and dictionaries.
pub fn check_pth(path: &Path) -> Result<(), ModelError> {
    let refuse = |detail: String| ModelError::Weights {
        path: path.to_path_buf(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        refuse(format!(
            "not a PyTorch zip checkpoint ({e}); legacy (pre-1.6) files must be re-saved with torch.save first"
        ))
    })?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| n.ends_with("data.pkl"))
        .collect();
    if names.is_empty() {
        return Err(refuse(
            "no data.pkl inside: not a PyTorch checkpoint".into(),
        ));
    }
    for name in names {
        let entry = zip
            .by_name(&name)
            .map_err(|e| refuse(format!("{name}: {e}")))?;
        let mut reader = BufReader::new(entry);
        let mut stack = Stack::empty();
        stack
            .read_loop(&mut reader)
            .map_err(|e| refuse(format!("{name}: unreadable pickle: {e}")))?;
        let obj = stack
            .finalize()
            .map_err(|e| refuse(format!("{name}: unreadable pickle: {e}")))?;
        let mut found = Vec::new();
        classes(&obj, &mut found);
        if let Some((m, c)) = found.iter().find(|(m, c)| !allowed(m, c)) {
            return Err(refuse(format!(
                "the checkpoint refers to {m}.{c}, which is code or an object, not weights; refused without running it \
                 (save a state dict: torch.save(model.state_dict(), …) or fastai's learn.save)"
            )));
        }
    }
    Ok(())
}

/// torchvision names for a state dict that may come from fastai (`0.N.…` body, `1.N.…` head).
fn torchvision_name(name: &str) -> String {
    let body = [
        ("0.0.", "conv1."),
        ("0.1.", "bn1."),
        ("0.4.", "layer1."),
        ("0.5.", "layer2."),
        ("0.6.", "layer3."),
        ("0.7.", "layer4."),
    ];
    for (from, to) in body {
        if let Some(rest) = name.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    if let Some(rest) = name.strip_prefix("1.") {
        return format!("head.{rest}");
    }
    name.to_string()
}

/// Reads the tensors of a checked checkpoint, under torchvision/Sacro names. fastai's `learn.save`
/// files keep the weights under the key `model`.
pub fn read_pth(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    check_pth(path)?;
    let wrap = |e: candle_core::Error| ModelError::Weights {
        path: path.to_path_buf(),
        detail: format!("cannot read tensors: {e}"),
    };
    let direct = candle_core::pickle::read_all(path).map_err(wrap)?;
    let tensors = if direct.is_empty() {
        candle_core::pickle::read_all_with_key(path, Some("model")).map_err(wrap)?
    } else {
        direct
    };
    if tensors.is_empty() {
        return Err(ModelError::Weights {
            path: path.to_path_buf(),
            detail: "no tensors found (neither a state dict nor a dict with a 'model' state dict)"
                .into(),
        });
    }
    Ok(tensors
        .into_iter()
        .map(|(k, v)| (torchvision_name(&k), v))
        .collect())
}
