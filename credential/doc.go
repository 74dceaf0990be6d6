// Package credential holds the security primitives of Recourse: password
// hashing and password rules, TOTP, WebAuthn, and the minting, hashing and
// comparing of tokens, one-time codes and recovery codes, plus the sealing of
// secrets kept at rest.
//
// The package knows nothing about accounts, stores or HTTP. It answers
// narrow questions ("does this password match this hash?", "is this code
// valid at this time, and for which time step?") and leaves the decisions
// that need state — replay protection, attempt counting, lockouts — to the
// service layer, which must make them atomically in the store.
//
// Conventions that hold throughout:
//
//   - Secrets are compared in constant time (crypto/subtle).
//   - Randomness comes from crypto/rand only.
//   - Tokens and codes are stored as keyed hashes ([Hasher]), never in the
//     clear; TOTP secrets, which must be recoverable, are sealed ([Sealer]).
//   - Parsers of stored or user-supplied data refuse malformed input with an
//     error rather than panicking, and refuse parameters that would make the
//     server do unbounded work.
package credential
