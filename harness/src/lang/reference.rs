//! The step reference, `docs/reference/steps.md`, written from the JSON
//! Schema of the language (`schema()`): the doc comments of the structs that
//! load a spec are the one place a step is described, and the reference
//! follows them as the editor's hover text does.
//!
//! It reads the schema's JSON, not the Rust types, so that the loader's
//! types can be renamed or merged without this file changing. What it takes from the schema:
//!
//! - the keywords, in the order of the language's list of steps (the items
//!   of a scenario's `steps`: one single-key object per keyword);
//! - each keyword's definition: its description (the struct's doc comment),
//!   its fields, and whether a bare name stands for the map (a string
//!   alternative beside the definition);
//! - the value types the fields name (durations, sizes, payloads...), listed
//!   once at the end.
//!
//! The families are the one thing the schema does not carry: each
//! keyword's is said where it is declared (`lang/step.rs`), and what each
//! family is about in `FAMILIES`. `harness/tests/reference_doc.rs` keeps the file current.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What each family of steps is about, by the stem of its files in `lang/`
/// (and `steps/`). Which keywords are in it is said where they are declared
/// (`KEYWORD_FAMILIES`, from `lang/step.rs`). A keyword of a family missing
/// here is listed under `STEPS_WITHOUT_FAMILY`, which the reference's test
/// refuses.
const FAMILIES: &[(&str, &str)] = &[
    ("program", "the programs under test"),
    ("tcp", "the harness as a client or a server of the program"),
    ("udp", "the harness's datagram endpoints"),
    ("http", "HTTP/1.1 messages on a connection"),
    ("rpc", "binary messages on a connection"),
    ("multicast", "the group"),
    ("flow", "steps that hold steps"),
    ("witness", "what the kernel shows of the program"),
];

/// The family of keywords that `FAMILIES` does not name.
pub const STEPS_WITHOUT_FAMILY: &str = "not yet in a family";

/// The step reference as Markdown, the text of `docs/reference/steps.md`.
pub fn steps_markdown() -> String {
    let schema: Value = serde_json::from_str(&super::schema()).expect("the schema is JSON");
    Reference::new(&schema).write()
}

/// A step keyword as the list of steps declares it.
#[derive(Clone)]
struct Keyword {
    name: String,
    /// The definition of its map form.
    def: Option<String>,
    /// A bare name stands for the map (`start: server`).
    short: bool,
}

/// One pass over the schema: what is written where, and the value types
/// met on the way, to be listed at the end.
struct Reference<'a> {
    root: &'a Value,
    defs: &'a Map<String, Value>,
    /// The definition of the list of steps, and its keywords in the
    /// language's order.
    steps_def: String,
    keywords: Vec<Keyword>,
    /// Definitions written under a heading of their own: their anchor.
    placed: BTreeMap<String, String>,
    /// Value types named by a field, written under "Types".
    types: BTreeSet<String>,
}

impl<'a> Reference<'a> {
    fn new(root: &'a Value) -> Self {
        let defs = root["definitions"].as_object().expect("the schema has definitions");
        // Found through the spec's own keys, not by a type's name.
        let scenario = ref_name(&root["properties"]["scenarios"]["items"]).expect("scenarios are a list of refs");
        let program = ref_name(&root["properties"]["programs"]["additionalProperties"]).expect("programs are refs");
        let steps_def = ref_name(&defs[scenario]["properties"]["steps"]["items"]).expect("steps are refs");
        let keywords: Vec<Keyword> = defs[steps_def]["oneOf"]
            .as_array()
            .expect("the steps are a oneOf")
            .iter()
            .map(|variant| {
                let (keyword, value) = variant["properties"].as_object().unwrap().iter().next().unwrap();
                let alternatives = value["anyOf"]
                    .as_array()
                    .map_or(std::slice::from_ref(value), Vec::as_slice);
                Keyword {
                    name: keyword.clone(),
                    def: alternatives.iter().find_map(ref_name).map(str::to_string),
                    short: alternatives.iter().any(|a| a["type"] == "string"),
                }
            })
            .collect();
        let mut placed = BTreeMap::from([
            (scenario.to_string(), "scenarios".to_string()),
            (program.to_string(), "programs".to_string()),
            (steps_def.to_string(), "steps".to_string()),
        ]);
        for keyword in &keywords {
            if let Some(def) = &keyword.def {
                let at = anchor(&format!("`{}`", keyword.name));
                placed.entry(def.clone()).or_insert(at);
            }
        }
        Reference {
            root,
            defs,
            steps_def: steps_def.to_string(),
            keywords,
            placed,
            types: BTreeSet::new(),
        }
    }

    fn write(mut self) -> String {
        let mut out = String::new();
        out.push_str(
            "<!-- Generated by harness::lang::steps_markdown() from the JSON Schema of `sockgrade schema`: \
             do not edit. Change the doc comments in harness/src/lang/, then run \
             `SOCKGRADE_BLESS=1 cargo test -p harness --test reference_doc`. -->\n\n",
        );
        out.push_str("# Step reference\n\n");
        out.push_str(
            "Every key and step keyword of the spec language, from the doc comments of the types that load a \
             spec (`harness/src/lang/`): the same text an editor shows ([editor \
             completion](../guide/writing-a-spec.md#editor-completion)). How the steps fit together, with \
             examples, is [Writing a spec](../guide/writing-a-spec.md). This file is generated: \
             `SOCKGRADE_BLESS=1 cargo test -p harness --test reference_doc` writes it again.\n\n",
        );

        // The spec file and its two kinds of entries.
        out.push_str("## The spec file\n\n");
        push_paragraph(&mut out, self.root);
        out.push_str(&self.fields_table(self.root));
        for (key, what, schema) in [
            (
                "programs",
                "each program",
                &self.root["properties"]["programs"]["additionalProperties"],
            ),
            (
                "scenarios",
                "each scenario",
                &self.root["properties"]["scenarios"]["items"],
            ),
        ] {
            let def = &self.defs[ref_name(schema).unwrap()];
            out.push_str(&format!("### `{key}`\n\nThe fields of {what}.\n\n"));
            push_paragraph(&mut out, def);
            out.push_str(&self.fields_table(def));
        }

        // The steps, family by family; the first paragraph of the list's
        // description says what a step is (the rest is about the Rust code).
        out.push_str("## Steps\n\n");
        if let Some(text) = self.defs[&self.steps_def]["description"].as_str() {
            out.push_str(text.split("\n\n").next().unwrap());
            out.push_str("\n\n");
        }
        let families = self.families();
        for (family, about, keywords) in &families {
            let links: Vec<String> = keywords
                .iter()
                .map(|k| format!("[`{0}`](#{1})", k.name, anchor(&format!("`{}`", k.name))))
                .collect();
            let heading = format!("{family}: {about}");
            out.push_str(&format!("- [{heading}](#{}): {}\n", anchor(&heading), links.join(", ")));
        }
        out.push('\n');
        let mut described: BTreeMap<String, String> = BTreeMap::new();
        for (family, about, keywords) in families {
            out.push_str(&format!("## {family}: {about}\n\n"));
            if family != STEPS_WITHOUT_FAMILY {
                out.push_str(&format!(
                    "Declared in `harness/src/lang/{family}.rs`, run by `harness/src/steps/{family}.rs`.\n\n"
                ));
            }
            for keyword in &keywords {
                out.push_str(&self.step(keyword, &mut described));
            }
        }

        // The value types the fields named, and those they name in turn.
        out.push_str("## Types\n\n");
        let mut written = BTreeSet::new();
        let mut sections = BTreeMap::new();
        while let Some(name) = self.types.difference(&written).next().cloned() {
            written.insert(name.clone());
            let text = self.value_type(&name);
            sections.insert(name, text);
        }
        for text in sections.values() {
            out.push_str(text);
        }
        out.trim_end().to_string() + "\n"
    }

    /// (family, what it is about, its keywords in the language's order), in
    /// the order of each family's first keyword.
    fn families(&self) -> Vec<(String, String, Vec<Keyword>)> {
        let mut families: Vec<(String, String, Vec<Keyword>)> = Vec::new();
        for keyword in &self.keywords {
            let stem = super::KEYWORD_FAMILIES
                .iter()
                .find(|(k, _)| *k == keyword.name)
                .map(|(_, family)| *family);
            let (family, about) = FAMILIES.iter().find(|(family, _)| Some(*family) == stem).map_or(
                (
                    STEPS_WITHOUT_FAMILY,
                    "add them to `FAMILIES` in harness/src/lang/reference.rs",
                ),
                |f| (f.0, f.1),
            );
            match families.iter_mut().find(|f| f.0 == family) {
                Some(f) => f.2.push(keyword.clone()),
                None => families.push((family.into(), about.into(), vec![keyword.clone()])),
            }
        }
        families
    }

    /// One keyword: its description, its short form, its fields. A
    /// definition shared by several keywords is written at the first.
    fn step(&mut self, keyword: &Keyword, described: &mut BTreeMap<String, String>) -> String {
        let Keyword {
            name: keyword,
            def,
            short,
        } = keyword;
        let mut out = format!("### `{keyword}`\n\n");
        let short_form = match *short {
            true => format!("Short form: `{keyword}: NAME`, the name alone stands for the map.\n\n"),
            false => String::new(),
        };
        let Some(def) = def else {
            return out + "No fields: the keyword alone.\n\n" + &short_form;
        };
        if let Some(first) = described.get(def) {
            let first = format!("[`{first}`](#{})", anchor(&format!("`{first}`")));
            return out + &format!("The same fields as {first}, described there.\n\n") + &short_form;
        }
        described.insert(def.clone(), keyword.to_string());
        let def = &self.defs[def];
        push_paragraph(&mut out, def);
        out.push_str(&short_form);
        // A keyword that takes another's options (`kill` those of a step
        // that names a program): its own words above, then those options,
        // written once.
        let shared = match def["allOf"].as_array().map(Vec::as_slice) {
            Some([only]) => ref_name(only),
            _ => None,
        };
        let Some(shared) = shared else {
            out.push_str(&self.fields_table(def));
            return out;
        };
        match described.get(shared) {
            Some(first) => {
                let first = format!("[`{first}`](#{})", anchor(&format!("`{first}`")));
                out.push_str(&format!("The same fields as {first}.\n\n"));
            }
            None => {
                described.insert(shared.to_string(), keyword.to_string());
                let shared = &self.defs[shared];
                out.push_str(&self.fields_table(shared));
            }
        }
        out
    }

    /// A value type under "Types": its description, then its fields, or the
    /// forms it may take.
    fn value_type(&mut self, name: &str) -> String {
        let def = &self.defs[name];
        let mut out = format!("### Type `{name}`\n\n");
        push_paragraph(&mut out, def);
        let alternatives: Vec<&Value> = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| def[*k].as_array())
            .flatten()
            .filter(|a| !is_null(a))
            .collect();
        if def.get("properties").is_some() {
            out.push_str(&self.fields_table(def));
        } else if alternatives.len() > 1 {
            out.push_str("One of:\n\n");
            let mut maps = Vec::new();
            for alternative in alternatives {
                let described = alternative["description"].as_str().map(one_line);
                let form = if alternative.get("properties").is_some() {
                    maps.push(alternative);
                    "a map of the fields below".to_string()
                } else {
                    self.type_of(alternative)
                };
                match described {
                    Some(text) => out.push_str(&format!("- {form}: {text}\n")),
                    None => out.push_str(&format!("- {form}\n")),
                }
            }
            out.push('\n');
            for map in maps {
                out.push_str(&self.fields_table(map));
            }
        } else {
            out.push_str(&format!("Written as: {}.\n\n", self.type_of(def)));
        }
        out
    }

    /// The fields of an object schema: required ones first, in their order,
    /// then the others by name.
    fn fields_table(&mut self, object: &Value) -> String {
        let Some(properties) = object["properties"].as_object() else {
            return String::new();
        };
        let required: Vec<&str> = object["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut names: Vec<&String> = properties.keys().collect();
        names.sort_by_key(|n| (required.iter().position(|r| r == *n).unwrap_or(usize::MAX), n.as_str()));
        let mut out = String::from("| field | type | description |\n| --- | --- | --- |\n");
        for name in names {
            let field = &properties[name];
            let mut kind = self.type_of(field);
            if required.contains(&name.as_str()) {
                kind.push_str(", required");
            }
            if let Some(default) = field.get("default").filter(|d| !is_empty(d)) {
                kind.push_str(&format!(", default `{}`", plain(default)));
            }
            let description = field["description"].as_str().map(one_line).unwrap_or_default();
            out.push_str(&format!("| `{name}` | {} | {} |\n", cell(&kind), cell(&description)));
        }
        out + "\n"
    }

    /// A field's type in words: `string`, `list of Size`, `` `a` | `b` ``;
    /// a definition with a description of its own is linked, and listed
    /// under "Types" unless it has a heading already.
    fn type_of(&mut self, schema: &Value) -> String {
        if let Some(name) = ref_name(schema) {
            let def = &self.defs[name];
            if let Some(anchor) = self.placed.get(name) {
                return format!("[{}](#{anchor})", if name == self.steps_def { "step" } else { name });
            }
            if def.get("description").is_none() && def.get("properties").is_none() {
                return self.type_of(def);
            }
            self.types.insert(name.to_string());
            return format!("[{name}](#{})", anchor(&format!("Type `{name}`")));
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(alternatives) = schema[key].as_array() {
                let forms: Vec<String> = alternatives
                    .iter()
                    .filter(|a| !is_null(a))
                    .map(|a| self.type_of(a))
                    .collect();
                return forms.join(" or ");
            }
        }
        if let Some(values) = schema["enum"].as_array() {
            return values
                .iter()
                .map(|v| format!("`{}`", plain(v)))
                .collect::<Vec<_>>()
                .join(" | ");
        }
        if let Some(value) = schema.get("const") {
            return format!("`{}`", plain(value));
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
            _ => vec![],
        };
        let forms: Vec<String> = types
            .into_iter()
            .map(|t| match t {
                "array" => format!("list of {}", self.type_of(&schema["items"])),
                "object" => match &schema["additionalProperties"] {
                    values @ Value::Object(_) => format!("map of {}", self.type_of(values)),
                    _ => "map".to_string(),
                },
                other => other.to_string(),
            })
            .collect();
        if forms.is_empty() {
            "anything".to_string()
        } else {
            forms.join(" or ")
        }
    }
}

/// A schema's description as a paragraph of its own, as written.
fn push_paragraph(out: &mut String, schema: &Value) {
    if let Some(text) = schema["description"].as_str() {
        out.push_str(text.trim_end());
        out.push_str("\n\n");
    }
}

fn ref_name(schema: &Value) -> Option<&str> {
    schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/definitions/"))
}

fn is_null(schema: &Value) -> bool {
    schema["type"] == "null"
}

/// A default not worth saying: none, or an empty list or map.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A value as a spec writes it: strings without their quotes.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A doc comment's lines joined, for a table cell or a list item.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A table cell: a `|` would end it, even inside backticks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The anchor GitHub gives a heading: lower case, punctuation dropped but
/// `-` and `_`, spaces as `-`.
pub fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}
