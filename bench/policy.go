package bench

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/recourse/recourse/policy"
	"github.com/recourse/recourse/service"
)

// benchRule is put first in password.reset and authenticator.recover: for
// bench accounts only, a code to the confirmed email address and one
// approval by the manager, with no cooling-off. recovery-full needs a
// recovery that completes inside a measurement; the built-in policy's
// 24-hour cooling-off would not.
var benchRule = `
name: bench
description: recourse bench only - a code and the manager's approval, no cooling-off.
when: '"` + service.BenchGroup + `" in account.groups'
require:
  evidence:
    all:
      - code: {channel: email}
      - approval: {from: [manager]}
  notify: [account]
`

// BenchPolicy returns the policy the bench server runs: the built-in policy
// with benchRule first in the rules of password.reset and
// authenticator.recover. It loads, and lint finds no error in it (warnings
// are expected: one code and one approval is weaker than the built-in).
func BenchPolicy() ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(policy.DefaultYAML(), &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errors.New("bench policy: the built-in policy is not a YAML document")
	}
	actions := mapValue(doc.Content[0], "actions")
	for _, action := range []string{"password.reset", "authenticator.recover"} {
		rules := mapValue(mapValue(actions, action), "rules")
		if rules == nil || rules.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("bench policy: the built-in policy has no rules for %s", action)
		}
		var rule yaml.Node
		if err := yaml.Unmarshal([]byte(benchRule), &rule); err != nil {
			return nil, err
		}
		rules.Content = append([]*yaml.Node{rule.Content[0]}, rules.Content...)
	}
	if n := mapValue(doc.Content[0], "name"); n != nil {
		n.Value = "recourse-bench"
	}
	var buf bytes.Buffer
	buf.WriteString("# Written by `recourse bench`: the built-in policy, with a relaxed recovery rule for\n# the bench accounts (group \"" +
		service.BenchGroup + "\") in password.reset and authenticator.recover. Never use it in production.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	p, err := policy.Load(buf.Bytes(), "bench-policy.yaml")
	if err != nil {
		return nil, fmt.Errorf("bench policy does not load: %w", err)
	}
	var errs []string
	for _, f := range p.Lint() {
		if f.Severity == policy.SeverityError {
			errs = append(errs, f.String())
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("bench policy fails lint:\n%s", strings.Join(errs, "\n"))
	}
	return buf.Bytes(), nil
}

// mapValue returns the value of key in a mapping node, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
