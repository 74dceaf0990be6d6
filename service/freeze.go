package service

import (
	"context"
	"errors"

	"github.com/recourse/recourse"
)

// UnfreezeAccount lifts a freeze set by a "this wasn't me" report, after
// the security team has looked. It is audited; the account's holder is
// told.
func (s *Service) UnfreezeAccount(ctx context.Context, accountID string, meta Meta) error {
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		a, err := tx.Account(ctx, accountID)
		if err != nil {
			return err
		}
		if a.FrozenAt == nil {
			return nil
		}
		if err := tx.SetAccountFrozen(ctx, a.ID, nil); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionAccountUnlock, Outcome: recourse.OutcomeSuccess,
			SubjectID: a.ID, Reason: "freeze lifted", Before: map[string]string{"frozen": "true"}, After: map[string]string{"frozen": "false"}}, meta); err != nil {
			return err
		}
		return s.notifyAccount(ctx, tx, a, "Your account is no longer frozen", []string{
			"The security team lifted the freeze on your account. You can sign in and recover it again.",
		}, meta)
	})
	if errors.Is(err, recourse.ErrNotFound) {
		return recourse.Errorf(recourse.ENOTFOUND, "No account %q.", accountID)
	}
	return internal("unfreeze", err)
}
