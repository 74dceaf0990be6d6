package policy

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
)

// AccountVars is the account as conditions see it: `account.groups`,
// `account.authenticators.exists(a, a.phishing_resistant)`, …
type AccountVars struct {
	ID               string              `cel:"id"`
	Username         string              `cel:"username"`
	Kind             string              `cel:"kind"`
	Status           string              `cel:"status"`
	Employment       string              `cel:"employment"`
	HasContractEnd   bool                `cel:"has_contract_end"`
	ContractEnd      time.Time           `cel:"contract_end"`
	Manager          string              `cel:"manager"`
	Sponsor          string              `cel:"sponsor"`
	Owners           []string            `cel:"owners"`
	Groups           []string            `cel:"groups"`
	Roles            []string            `cel:"roles"`
	IAL              int64               `cel:"ial"`
	AAL              int64               `cel:"aal"`
	Age              time.Duration       `cel:"age"`
	Authenticators   []AuthenticatorVars `cel:"authenticators"`
	Channels         []ChannelVars       `cel:"channels"`
	RecoveryContacts []string            `cel:"recovery_contacts"`
}

// AuthenticatorVars is one bound authenticator.
type AuthenticatorVars struct {
	Type              string        `cel:"type"`
	PhishingResistant bool          `cel:"phishing_resistant"`
	DeviceBound       bool          `cel:"device_bound"`
	BoundAt           time.Time     `cel:"bound_at"`
	Age               time.Duration `cel:"age"`
}

// ChannelVars is one email address or phone number.
type ChannelVars struct {
	Kind     string        `cel:"kind"`
	Verified bool          `cel:"verified"`
	Shared   bool          `cel:"shared"`
	Age      time.Duration `cel:"age"`
}

// RequestVars is the request's context: `request.initiator == "help_desk"`.
type RequestVars struct {
	// Initiator is "self", "help_desk", "api" or "admin".
	Initiator   string    `cel:"initiator"`
	InitiatorID string    `cel:"initiator_id"`
	IP          string    `cel:"ip"`
	Time        time.Time `cel:"time"`
	// SessionAAL is the subject's current sign-in level (0 when not signed
	// in); SignedIn says whether there is one.
	SessionAAL int64 `cel:"session_aal"`
	SignedIn   bool  `cel:"signed_in"`
}

// costLimit bounds each condition's worst-case cost (CEL's cost units),
// estimated statically at load from the input bounds below. A condition that
// could cost more is refused, so evaluation needs no runtime cost tracking.
const costLimit = 100_000

// Input bounds the cost estimate relies on; Decide refuses larger inputs.
const (
	maxListLen   = 100
	maxStringLen = 1024
)

// sizeEstimator tells CEL's cost estimator how large inputs can be.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	switch n.Type().Kind() {
	case types.ListKind, types.MapKind:
		return &checker.SizeEstimate{Min: 0, Max: maxListLen}
	case types.StringKind, types.BytesKind:
		return &checker.SizeEstimate{Min: 0, Max: maxStringLen}
	}
	return nil
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// checkCost refuses a condition whose worst case exceeds budget.
func checkCost(env *cel.Env, ast *cel.Ast, budget uint64) error {
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return fmt.Errorf("cost estimate: %w", err)
	}
	if est.Max > budget {
		return fmt.Errorf("the condition could cost %d units in the worst case, over the budget of %d: simplify it", est.Max, budget)
	}
	return nil
}

// newEnv declares the variables conditions may use: account, request, now,
// and classes (the names of the subject classes the account is in; not
// available to class conditions themselves).
func newEnv(withClasses bool) (*cel.Env, error) {
	opts := []cel.EnvOption{
		ext.NativeTypes(ext.ParseStructTags(true), reflect.TypeFor[AccountVars](), reflect.TypeFor[RequestVars]()),
		cel.Variable("account", cel.ObjectType("policy.AccountVars")),
		cel.Variable("request", cel.ObjectType("policy.RequestVars")),
		cel.Variable("now", cel.TimestampType),
		ext.Strings(),
	}
	if withClasses {
		opts = append(opts, cel.Variable("classes", cel.ListType(cel.StringType)))
	}
	return cel.NewEnv(opts...)
}

// compile checks that expr is a boolean condition and plans it.
func compile(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("the condition must be true or false, not %s", ast.OutputType())
	}
	if err := checkCost(env, ast, costLimit); err != nil {
		return nil, err
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize))
}

// eval runs a compiled condition.
func eval(ctx context.Context, prg cel.Program, vars map[string]any) (bool, error) {
	out, _, err := prg.ContextEval(ctx, vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition returned %v, not a boolean", out.Type())
	}
	return bool(b), nil
}
