//! Skills (agentskills.io): a `SKILL.md` whose YAML front matter names and
//! describes the skill, followed by the instructions an agent loads on demand.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A parsed and validated `SKILL.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    /// `name`: lowercase letters, digits and single hyphens, at most 64 characters.
    pub name: String,
    /// `description`: what the skill does and when to use it, at most 1024 characters.
    pub description: String,
    /// `license`, if given.
    pub license: Option<String>,
    /// `metadata`, if given.
    pub metadata: BTreeMap<String, String>,
    /// The Markdown after the front matter.
    pub body: String,
}

/// Why a `SKILL.md` was refused. Every message names the field and the rule.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SkillError {
    /// No `---` front matter block at the top.
    #[error(
        "SKILL.md has no front matter: it must start with a line `---`, then YAML with `name` and `description`, then a line `---`"
    )]
    NoFrontMatter,
    /// The front matter is not valid YAML or has a field of the wrong type.
    #[error("SKILL.md front matter is not valid: {0}")]
    Yaml(String),
    /// A field the specification does not define.
    #[error(
        "SKILL.md front matter has unknown field `{0}`: allowed are name, description, license, compatibility, metadata, allowed-tools"
    )]
    UnknownField(String),
    /// A required field is missing or empty.
    #[error("SKILL.md front matter: `{0}` is required and must not be empty")]
    Missing(&'static str),
    /// A field breaks its rule.
    #[error("SKILL.md front matter: `{field}` {rule}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong, and the rule.
        rule: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FrontMatter {
    name: Option<String>,
    description: Option<String>,
    license: Option<String>,
    compatibility: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[allow(dead_code)]
    allowed_tools: Option<String>,
}

const FIELDS: &[&str] = &[
    "name",
    "description",
    "license",
    "compatibility",
    "metadata",
    "allowed-tools",
];

impl Skill {
    /// Parse and validate `text`. When `dir_name` is given the skill's `name` must
    /// equal it, as the specification requires.
    pub fn parse(text: &str, dir_name: Option<&str>) -> Result<Skill, SkillError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let rest = text
            .strip_prefix("---\n")
            .or_else(|| text.strip_prefix("---\r\n"))
            .ok_or(SkillError::NoFrontMatter)?;
        let (yaml, body) = split_front_matter(rest).ok_or(SkillError::NoFrontMatter)?;
        let raw: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(yaml).map_err(|e| SkillError::Yaml(e.to_string()))?;
        let map = raw
            .as_mapping()
            .ok_or_else(|| SkillError::Yaml("expected a mapping of fields".into()))?;
        for key in map.keys() {
            let key = key.as_str().unwrap_or("<non-string key>");
            if !FIELDS.contains(&key) {
                return Err(SkillError::UnknownField(key.to_string()));
            }
        }
        let fm: FrontMatter =
            serde_yaml_ng::from_value(raw).map_err(|e| SkillError::Yaml(e.to_string()))?;
        let name = fm.name.filter(|n| !n.trim().is_empty());
        let name = name.ok_or(SkillError::Missing("name"))?;
        validate_name(&name)?;
        if let Some(dir) = dir_name
            && dir != name
        {
            return Err(SkillError::Invalid {
                field: "name",
                rule: format!(
                    "is `{name}` but the skill's directory is `{dir}`: they must be equal"
                ),
            });
        }
        let description = fm.description.filter(|d| !d.trim().is_empty());
        let description = description.ok_or(SkillError::Missing("description"))?;
        let len = description.chars().count();
        if len > 1024 {
            return Err(SkillError::Invalid {
                field: "description",
                rule: format!("has {len} characters; at most 1024 are allowed"),
            });
        }
        if let Some(c) = &fm.compatibility {
            let len = c.chars().count();
            if len > 500 {
                return Err(SkillError::Invalid {
                    field: "compatibility",
                    rule: format!("has {len} characters; at most 500 are allowed"),
                });
            }
        }
        Ok(Skill {
            name,
            description: description.trim().to_string(),
            license: fm.license,
            metadata: fm.metadata,
            body: body.to_string(),
        })
    }
}

fn split_front_matter(rest: &str) -> Option<(&str, &str)> {
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

fn validate_name(name: &str) -> Result<(), SkillError> {
    let invalid = |rule: String| SkillError::Invalid {
        field: "name",
        rule,
    };
    let len = name.chars().count();
    if len > 64 {
        return Err(invalid(format!(
            "has {len} characters; at most 64 are allowed"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(invalid(format!(
            "`{name}` contains `{c}`: only lowercase letters, digits and hyphens are allowed"
        )));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(invalid(format!(
            "`{name}` starts or ends with a hyphen, which is not allowed"
        )));
    }
    if name.contains("--") {
        return Err(invalid(format!(
            "`{name}` contains consecutive hyphens, which are not allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "---\nname: refund-policy\ndescription: How to decide refunds. Use when a customer asks for money back.\nmetadata:\n  owner: payments\n---\n# Refunds\nCheck the ledger first.\n";

    #[test]
    fn a_valid_skill_parses_with_its_body() {
        let s = Skill::parse(GOOD, Some("refund-policy")).unwrap();
        assert_eq!(s.name, "refund-policy");
        assert!(s.description.starts_with("How to decide"));
        assert_eq!(s.metadata["owner"], "payments");
        assert_eq!(s.body, "# Refunds\nCheck the ledger first.\n");
    }

    #[test]
    fn each_rule_has_its_own_error() {
        let e = |t: &str| Skill::parse(t, None).unwrap_err().to_string();
        assert!(e("# no front matter").contains("has no front matter"));
        assert!(e("---\nname: x\n").contains("has no front matter"));
        assert!(e("---\ndescription: d\n---\n").contains("`name` is required"));
        assert!(e("---\nname: x\n---\n").contains("`description` is required"));
        assert!(e("---\nname: Refunds\ndescription: d\n---\n").contains("contains `R`"));
        assert!(e("---\nname: -x\ndescription: d\n---\n").contains("starts or ends"));
        assert!(e("---\nname: a--b\ndescription: d\n---\n").contains("consecutive"));
        let long = "a".repeat(65);
        assert!(e(&format!("---\nname: {long}\ndescription: d\n---\n")).contains("at most 64"));
        let long = "d".repeat(1025);
        assert!(e(&format!("---\nname: x\ndescription: {long}\n---\n")).contains("at most 1024"));
        assert!(
            e("---\nname: x\ndescription: d\nversion: 2\n---\n")
                .contains("unknown field `version`")
        );
        assert!(e("---\nname: [x\n---\n").contains("not valid"));
        let wrong_dir = Skill::parse(GOOD, Some("refunds")).unwrap_err().to_string();
        assert!(wrong_dir.contains("directory is `refunds`"), "{wrong_dir}");
    }
}
