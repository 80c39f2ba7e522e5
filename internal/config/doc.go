// Package config reads, defaults and validates the pgtide configuration.
//
// # Sources of settings
//
// Settings come from a YAML file, then PGTIDE_* environment variables,
// then command-line flags; a later source overrides an earlier one. [Load]
// reads the file and the environment, applies defaults and validates; the
// command line sets flags on the result and calls [Config.Validate] again.
// [Parse] reads YAML bytes alone, for tests and tools.
//
// The file is strict: an unknown key is an error (with a suggestion when it
// looks like a typo), as is a key given twice, and every problem is
// reported at once with its key path and line:
//
//	pgtide.yaml:7: sources[0].name: "Shop DB" is not a valid source name: use lowercase letters, ...
//	pgtide.yaml:12: sources[0].hearbeat_interval: unknown key: did you mean "heartbeat_interval"?
//
// All such errors are a [*ValidationError] holding one [FieldError] per
// problem.
//
// # Defaults and zero values
//
// A key left out, or given with an empty value, takes its default. Zero can
// be a meaningful value ("heartbeat_interval: off" disables heartbeats,
// "retention: {max_age: 0}" keeps changes forever), so [Config.ApplyDefaults]
// fills only zero fields whose keys the file did not give. Durations accept
// "off" and "0" for zero; sizes accept units such as "8MiB" and "1GB" (see
// [ByteSize]).
//
// # Secrets
//
// Connection strings carry passwords, and proxy users carry passwords or
// SCRAM verifiers. No error of this package contains one, and
// [SourceConfig.RedactedDSN], [ReplicaConfig.RedactedDSN] and
// [DatasetConfig.RedactedSource] mask connection strings for logs.
//
// The reference of every key is docs/configuration.md.
package config
