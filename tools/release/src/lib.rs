//! Release digests: one per function of a SAM template, the value of its
//! `AutoPublishCodeSha256` (the template's `<Name>Digest` parameter).
//!
//! SAM names a function's version after a hash of its code and properties, taken before
//! CloudFormation resolves them: a parameter the environment refers to (`!Ref Multiplier`)
//! hashes the same whatever its value, so a configuration change keeps the version, and the
//! alias keeps the old configuration. Given `AutoPublishCodeSha256`, SAM names the version after
//! it instead. The digest here covers what the running version is made of: the function's
//! built artifact (every file `sam build` put in its folder), its properties and the
//! template's `Globals.Function` as written, and the value of every parameter they use,
//! directly or through a condition. A change of any of them publishes a new version of that
//! function, and only of that function.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;
use sha2::{Digest, Sha256};

/// The property SAM reads the digest from; not part of the digest itself.
const DIGEST_PROPERTY: &str = "AutoPublishCodeSha256";

/// What stops a digest.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a SAM template: {detail}")]
    Template { path: PathBuf, detail: String },
    #[error(
        "{path} is not a CloudFormation parameter file ({{\"Parameters\": {{...}}}}): {detail}"
    )]
    Params { path: PathBuf, detail: String },
    #[error("{function} has no built artifact in {path}: run `make sam-build` first")]
    NoArtifact { function: String, path: PathBuf },
}

/// The parameter that carries a function's digest: `SlackCounterFunction` → `SlackCounterDigest`.
pub fn digest_parameter(function: &str) -> String {
    format!(
        "{}Digest",
        function.strip_suffix("Function").unwrap_or(function)
    )
}

/// The logical ids of the template's functions, in order.
pub fn functions(template: &Value) -> Vec<String> {
    let Some(resources) = template.get("Resources").and_then(Value::as_mapping) else {
        return Vec::new();
    };
    (resources.iter())
        .filter(|(_, resource)| {
            resource.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function")
        })
        .filter_map(|(id, _)| id.as_str().map(str::to_owned))
        .collect()
}

/// Every function's digest parameter and its value, for these parameter values (a parameter
/// not given has its template default).
pub fn digests(
    template: &Value,
    build_dir: &Path,
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ReleaseError> {
    let parameters = parameter_values(template, values);
    let globals = template.get("Globals").and_then(|g| g.get("Function"));
    let mut digests = BTreeMap::new();
    for function in functions(template) {
        let properties = &template["Resources"][function.as_str()]["Properties"];
        let mut hash = Sha256::new();
        hash.update(b"artifact\n");
        hash_folder(&mut hash, &build_dir.join(&function), &function)?;
        hash.update(b"properties\n");
        for part in [globals.unwrap_or(&Value::Null), properties] {
            hash.update(canonical(part).as_bytes());
            hash.update(b"\n");
        }
        hash.update(b"parameters\n");
        let mut used = BTreeSet::new();
        for part in [globals.unwrap_or(&Value::Null), properties] {
            collect_parameters(template, part, &mut used, &mut BTreeSet::new());
        }
        for name in used.iter().filter(|name| !name.ends_with("Digest")) {
            let value = parameters.get(name).map_or("", String::as_str);
            hash.update(format!("{name}={value}\n").as_bytes());
        }
        digests.insert(digest_parameter(&function), hex::encode(hash.finalize()));
    }
    Ok(digests)
}

/// Computes the digests for the parameter file `params` and writes them into it.
pub fn write_digests(
    template_path: &Path,
    build_dir: &Path,
    params: &Path,
) -> Result<Vec<(String, String)>, ReleaseError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| ReleaseError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let template: Value =
        serde_yaml::from_str(&read(template_path)?).map_err(|e| ReleaseError::Template {
            path: template_path.to_owned(),
            detail: e.to_string(),
        })?;
    let bad_params = |detail: String| ReleaseError::Params {
        path: params.to_owned(),
        detail,
    };
    let mut file: serde_json::Value =
        serde_json::from_str(&read(params)?).map_err(|e| bad_params(e.to_string()))?;
    let given = file
        .get_mut("Parameters")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or_else(|| bad_params("it has no \"Parameters\" object".into()))?;
    let values: BTreeMap<String, String> = (given.iter())
        .map(|(name, value)| {
            let value = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or(value.to_string());
            (name.clone(), value)
        })
        .collect();
    let digests = digests(&template, build_dir, &values)?;
    for (parameter, digest) in &digests {
        given.insert(parameter.clone(), digest.clone().into());
    }
    let text = serde_json::to_string_pretty(&file).expect("JSON serializes") + "\n";
    std::fs::write(params, text).map_err(|source| ReleaseError::Write {
        path: params.to_owned(),
        source,
    })?;
    Ok(digests.into_iter().collect())
}

/// Each parameter's value: the one given, or the template's default.
fn parameter_values(
    template: &Value,
    values: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    if let Some(parameters) = template.get("Parameters").and_then(Value::as_mapping) {
        for (name, parameter) in parameters {
            let Some(name) = name.as_str() else { continue };
            let default = match parameter.get("Default") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => String::new(),
            };
            all.insert(
                name.to_owned(),
                values.get(name).cloned().unwrap_or(default),
            );
        }
    }
    all
}

/// Every file under `folder`, by relative path, into the hash; an error when there is none.
fn hash_folder(hash: &mut Sha256, folder: &Path, function: &str) -> Result<(), ReleaseError> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|_| ReleaseError::NoArtifact {
            function: function.to_owned(),
            path: folder.to_owned(),
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| ReleaseError::Read {
                    path: dir.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        return Err(ReleaseError::NoArtifact {
            function: function.to_owned(),
            path: folder.to_owned(),
        });
    }
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path).map_err(|source| ReleaseError::Read {
            path: path.clone(),
            source,
        })?;
        let relative = path.strip_prefix(folder).unwrap_or(&path);
        hash.update(format!("{} {}\n", relative.display(), bytes.len()).as_bytes());
        hash.update(&bytes);
    }
    Ok(())
}

/// The value as JSON with its keys in order and its tags kept (`{"!Ref": "Name"}`), leaving out
/// the digest property.
fn canonical(value: &Value) -> String {
    fn json(value: &Value) -> serde_json::Value {
        match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Number(n) => serde_json::to_value(n).unwrap_or_default(),
            Value::String(s) => s.clone().into(),
            Value::Sequence(items) => items.iter().map(json).collect(),
            Value::Mapping(map) => {
                let sorted: BTreeMap<String, serde_json::Value> = (map.iter())
                    .filter(|(key, _)| key.as_str() != Some(DIGEST_PROPERTY))
                    .map(|(key, value)| (canonical_key(key), json(value)))
                    .collect();
                serde_json::to_value(sorted).unwrap_or_default()
            }
            Value::Tagged(tagged) => {
                serde_json::json!({ tagged.tag.to_string(): json(&tagged.value) })
            }
        }
    }
    fn canonical_key(key: &Value) -> String {
        key.as_str()
            .map_or_else(|| json(key).to_string(), str::to_owned)
    }
    json(value).to_string()
}

/// The parameters `value` refers to (`Ref`, `${Name}` in `Sub`), also through the conditions
/// it names (`If`, `Condition`), into `used`.
fn collect_parameters(
    template: &Value,
    value: &Value,
    used: &mut BTreeSet<String>,
    conditions: &mut BTreeSet<String>,
) {
    let parameters = template.get("Parameters").and_then(Value::as_mapping);
    let is_parameter = |name: &str| parameters.is_some_and(|p| p.contains_key(name));
    let mut condition = |name: &str, used: &mut BTreeSet<String>| {
        if conditions.insert(name.to_owned()) {
            if let Some(definition) = template.get("Conditions").and_then(|c| c.get(name)) {
                collect_parameters(template, definition, used, conditions);
            }
        }
    };
    let (function, argument) = match value {
        Value::Tagged(tagged) => (
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        ),
        Value::Mapping(map) if map.len() == 1 => {
            let (key, argument) = map.iter().next().expect("one entry");
            match key.as_str() {
                Some("Ref") => ("Ref".to_owned(), argument),
                Some(key) if key.starts_with("Fn::") || key == "Condition" => {
                    (key.trim_start_matches("Fn::").to_owned(), argument)
                }
                _ => (String::new(), value),
            }
        }
        _ => (String::new(), value),
    };
    match (function.as_str(), argument) {
        ("Ref", Value::String(name)) if is_parameter(name) => {
            used.insert(name.clone());
        }
        ("Sub", _) => {
            let text = match argument {
                Value::Sequence(parts) => parts.first().and_then(Value::as_str),
                other => other.as_str(),
            };
            for name in text.map(sub_names).unwrap_or_default() {
                if is_parameter(&name) {
                    used.insert(name);
                }
            }
            if let Value::Sequence(parts) = argument {
                for part in parts.iter().skip(1) {
                    collect_parameters(template, part, used, conditions);
                }
            }
        }
        ("If", Value::Sequence(parts)) => {
            if let Some(name) = parts.first().and_then(Value::as_str) {
                condition(name, used);
            }
            for part in parts.iter().skip(1) {
                collect_parameters(template, part, used, conditions);
            }
        }
        ("Condition", Value::String(name)) => condition(name, used),
        _ => match argument {
            Value::Sequence(items) => {
                for item in items {
                    collect_parameters(template, item, used, conditions);
                }
            }
            Value::Mapping(map) => {
                for (key, item) in map {
                    if key.as_str() != Some(DIGEST_PROPERTY) {
                        collect_parameters(template, item, used, conditions);
                    }
                }
            }
            Value::Tagged(tagged) => collect_parameters(template, &tagged.value, used, conditions),
            _ => {}
        },
    }
}

/// The names a `Sub` string refers to: `${Name}`, not `${!Literal}` nor `${Resource.Attribute}`.
fn sub_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('}') else { break };
        let name = &rest[..end];
        if !name.starts_with('!') && !name.contains('.') {
            names.push(name.to_owned());
        }
        rest = &rest[end + 1..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"
Parameters:
  Multiplier: {Type: String, Default: "10"}
  Table: {Type: String, Default: words}
  Verbose: {Type: String, Default: "false"}
  Memory: {Type: Number, Default: 256}
  AlphaDigest: {Type: String, Default: ""}
Conditions:
  IsVerbose: !Equals [!Ref Verbose, "true"]
Globals:
  Function:
    MemorySize: !Ref Memory
Resources:
  AlphaFunction:
    Type: AWS::Serverless::Function
    Properties:
      AutoPublishCodeSha256: !Ref AlphaDigest
      Environment:
        Variables:
          MULTIPLIER: !Ref Multiplier
          LOG: !If [IsVerbose, debug, info]
  BetaFunction:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 10
      Environment:
        Variables:
          TABLE: !Sub "${Table}-${AWS::StackName}-${Queue.Arn}"
  Queue:
    Type: AWS::SQS::Queue
"#;

    struct Built(PathBuf);

    impl Built {
        fn new(name: &str) -> Built {
            let dir =
                std::env::temp_dir().join(format!("fanout-release-{}-{name}", std::process::id()));
            for function in ["AlphaFunction", "BetaFunction"] {
                std::fs::create_dir_all(dir.join(function)).unwrap();
                std::fs::write(dir.join(function).join("bootstrap"), function).unwrap();
            }
            Built(dir)
        }
    }

    impl Drop for Built {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn template(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Which functions' digests differ between two computations.
    fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
        a.iter()
            .filter(|(k, v)| b[*k] != **v)
            .map(|(k, _)| k.clone())
            .collect()
    }

    #[test]
    fn a_change_publishes_exactly_the_functions_it_concerns() {
        let built = Built::new("changes");
        let t = template(TEMPLATE);
        let base = digests(&t, &built.0, &values(&[])).unwrap();
        assert_eq!(
            base.keys().collect::<Vec<_>>(),
            ["AlphaDigest", "BetaDigest"]
        );
        assert!(base.values().all(|d| d.len() == 64));
        // Parameter values given, and the digests they change.
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: [Case; 6] = [
            (&[("Multiplier", "20")], &["AlphaDigest"]),
            (&[("Verbose", "true")], &["AlphaDigest"]),
            (&[("Table", "counts")], &["BetaDigest"]),
            (&[("Memory", "512")], &["AlphaDigest", "BetaDigest"]),
            (&[("Multiplier", "10")], &[]),
            (&[("AlphaDigest", "0123")], &[]),
        ];
        for (given, expected) in cases {
            let other = digests(&t, &built.0, &values(given)).unwrap();
            assert_eq!(changed(&base, &other), expected.to_vec(), "{given:?}");
        }
        let literal = template(&TEMPLATE.replace("Timeout: 10", "Timeout: 20"));
        let other = digests(&literal, &built.0, &values(&[])).unwrap();
        assert_eq!(changed(&base, &other), ["BetaDigest"]);
        std::fs::write(built.0.join("AlphaFunction/bootstrap"), "new code").unwrap();
        let other = digests(&t, &built.0, &values(&[])).unwrap();
        assert_eq!(changed(&base, &other), ["AlphaDigest"]);
    }

    #[test]
    fn written_digests_do_not_feed_back_and_a_missing_artifact_is_an_error() {
        let built = Built::new("write");
        let template_path = built.0.join("template.yaml");
        std::fs::write(&template_path, TEMPLATE).unwrap();
        let params = built.0.join("test.json");
        std::fs::write(
            &params,
            r#"{"Parameters": {"Multiplier": "20"}, "Tags": {"a": "b"}}"#,
        )
        .unwrap();
        let first = write_digests(&template_path, &built.0, &params).unwrap();
        let second = write_digests(&template_path, &built.0, &params).unwrap();
        assert_eq!(first, second);
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&params).unwrap()).unwrap();
        assert_eq!(written["Parameters"]["Multiplier"], "20");
        assert_eq!(written["Parameters"]["AlphaDigest"], first[0].1.as_str());
        assert_eq!(written["Tags"]["a"], "b");
        std::fs::remove_dir_all(built.0.join("BetaFunction")).unwrap();
        let err = write_digests(&template_path, &built.0, &params)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("BetaFunction") && err.contains("make sam-build"),
            "{err}"
        );
        std::fs::write(&params, "[]").unwrap();
        let err = write_digests(&template_path, &built.0, &params)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Parameters"), "{err}");
    }

    #[test]
    fn names_of_a_sub_are_its_parameters_and_resources() {
        assert_eq!(sub_names("${A}-${!B}-${C.Arn}/${D}"), ["A", "D"]);
        assert_eq!(digest_parameter("S3CopierFunction"), "S3CopierDigest");
    }
}
