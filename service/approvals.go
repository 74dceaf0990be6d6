package service

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/recourse/recourse"
	"github.com/recourse/recourse/policy"
)

// ApprovalItem is a request as an approver sees it: exactly what would
// change, who asked, from where, who initiated it, the evidence so far.
type ApprovalItem struct {
	Request     *recourse.Recovery
	Subject     *recourse.Account
	Roles       []string
	Requirement string
	Evidence    []string
	Missing     []string
	Votes       []*recourse.RecoveryVote
	// Voted is the approver's own vote on the current change, if any.
	Voted string

	proof proof // what Evidence, Missing and Votes were made from
}

var errNotApprover = recourse.Errorf(recourse.ENOTFOUND, "There is no request here waiting for you.")

// approvalItem loads r for approver p, or errNotApprover when p may not vote
// on it (the subject, the initiator, or nobody the policy asks).
func (s *Service) approvalItem(ctx context.Context, tx recourse.Tx, p *Principal, r *recourse.Recovery) (*ApprovalItem, error) {
	if r.AccountID == p.Account.ID || r.InitiatorID == p.Account.ID {
		return nil, errNotApprover
	}
	subject, err := tx.Account(ctx, r.AccountID)
	if err != nil {
		return nil, err
	}
	req, err := s.requirementOf(r)
	if err != nil {
		return nil, err
	}
	roles := s.eligibleRoles(ctx, subject, p.Account, req)
	if len(roles) == 0 {
		return nil, errNotApprover
	}
	seen, err := s.evidenceOf(ctx, tx, r)
	if err != nil {
		return nil, err
	}
	return approvalItemOf(r, subject, p.Account, roles, req, seen), nil
}

// approvalItemOf is the item r is for approver, given its proof.
func approvalItemOf(r *recourse.Recovery, subject, approver *recourse.Account, roles []string, req *policy.Requirement, seen proof) *ApprovalItem {
	item := &ApprovalItem{Request: r, Subject: subject, Roles: roles, Requirement: policy.Describe(req.Evidence),
		Evidence: seen.labels, Missing: policy.Satisfied(req, seen.ev).Missing, proof: seen}
	for _, v := range seen.votes {
		if v.ChangeDigest != r.ChangeDigest {
			continue // a vote on an earlier version of the change is void
		}
		item.Votes = append(item.Votes, v)
		if v.ApproverID == approver.ID {
			item.Voted = v.Vote
		}
	}
	return item
}

// PendingApprovals lists the requests waiting for p's vote.
func (s *Service) PendingApprovals(ctx context.Context, p *Principal) ([]*ApprovalItem, error) {
	open, err := s.store.OpenRecoveries(ctx, []recourse.RecoveryState{recourse.RecoveryAwaitingApproval}, 1000)
	if err != nil {
		return nil, internal("list requests", err)
	}
	var out []*ApprovalItem
	for _, r := range open {
		item, err := s.approvalItem(ctx, s.store, p, r)
		if errors.Is(err, errNotApprover) {
			continue
		}
		if err != nil {
			return nil, internal("approval item", err)
		}
		if item.Voted == "" {
			out = append(out, item)
		}
	}
	return out, nil
}

// ApprovalDetail returns one request for p to decide on.
func (s *Service) ApprovalDetail(ctx context.Context, p *Principal, id string) (*ApprovalItem, error) {
	r, err := s.store.Recovery(ctx, id)
	if errors.Is(err, recourse.ErrNotFound) {
		return nil, errNotApprover
	}
	if err != nil {
		return nil, internal("read request", err)
	}
	item, err := s.approvalItem(ctx, s.store, p, r)
	if err != nil && !errors.Is(err, errNotApprover) {
		return nil, internal("approval item", err)
	}
	return item, err
}

// Vote records p's approval or denial of the exact change the request holds
// now. The approver needs their own recent sign-in at AAL2 or higher; the
// subject and the initiator can never vote; one person votes once, whatever
// roles they hold; a denial by someone the policy asks denies the request.
func (s *Service) Vote(ctx context.Context, p *Principal, id, vote, comment string, meta Meta) error {
	_, err := s.VoteOnChange(ctx, p, id, vote, comment, "", meta)
	return err
}

// VoteOnChange is Vote bound to the change the approver saw: when
// expectedDigest is set and the request's change digest differs (it was
// edited since), the vote is refused with ECONFLICT, checked in the same
// transaction that records it. It returns the request as the vote's
// transaction left it, for the approver (what ApprovalDetail would answer,
// without reading it again).
func (s *Service) VoteOnChange(ctx context.Context, p *Principal, id, vote, comment, expectedDigest string, meta Meta) (*ApprovalItem, error) {
	if vote != "approve" && vote != "deny" {
		return nil, recourse.FieldError("vote", "must be approve or deny")
	}
	comment = strings.TrimSpace(comment)
	if utf8.RuneCountInString(comment) > 500 || !utf8.ValidString(comment) {
		return nil, recourse.FieldError("comment", "at most 500 characters")
	}
	if err := requireUnrestricted(p); err != nil {
		return nil, err
	}
	if p.Session.AAL < recourse.AAL2 {
		return nil, recourse.Errorf(recourse.ESTEPUP, "Approvals need a sign-in with a second factor. Add one and sign in again.")
	}
	if err := s.RequireRecentAuth(p); err != nil {
		return nil, err
	}
	meta.Actor = recourse.AuditActor{AccountID: p.Account.ID, Role: recourse.ActorApprover}
	var done *ApprovalItem
	err := s.store.InTx(ctx, func(tx recourse.Tx) error {
		r, err := tx.Recovery(ctx, id)
		if errors.Is(err, recourse.ErrNotFound) {
			return errNotApprover
		}
		if err != nil {
			return err
		}
		item, err := s.approvalItem(ctx, tx, p, r)
		if err != nil {
			return err
		}
		if expectedDigest != "" && expectedDigest != r.ChangeDigest {
			return recourse.Errorf(recourse.ECONFLICT, "The request changed since you looked at it. Review it again.")
		}
		if r.State != recourse.RecoveryAwaitingApproval && r.State != recourse.RecoveryCollecting {
			return recourse.Errorf(recourse.ECONFLICT, "This request no longer needs a vote.")
		}
		v := &recourse.RecoveryVote{RequestID: r.ID, ApproverID: p.Account.ID, ChangeDigest: r.ChangeDigest,
			Vote: vote, Roles: item.Roles, Comment: comment, CreatedAt: s.now()}
		err = tx.AddRecoveryVote(ctx, v)
		if errors.Is(err, recourse.ErrConflict) {
			return recourse.Errorf(recourse.ECONFLICT, "You have already voted on this request.")
		}
		if err != nil {
			return err
		}
		outcome := recourse.OutcomeSuccess
		if vote == "deny" {
			outcome = recourse.OutcomeDenied
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionApprovalVote, Outcome: outcome, SubjectID: r.AccountID,
			PolicyDigest: r.PolicyDigest, Reason: comment, Approvals: []string{p.Account.ID},
			Attributes: map[string]string{"request": r.ID, "vote": vote, "roles": strings.Join(item.Roles, ","), "change_digest": r.ChangeDigest}}, meta); err != nil {
			return err
		}
		// r is locked (tx.Recovery) and its proof was read after the lock,
		// so with the vote added it is what a read would give now; the
		// subject was read in this transaction too.
		after := item.proof.withVote(r, v)
		subject := subjectRead{Tx: tx, a: item.Subject}
		if vote == "deny" {
			if err := s.transition(ctx, subject, r, recourse.RecoveryDenied, "Denied by "+p.Account.DisplayName+" ("+strings.Join(item.Roles, ", ")+").", meta); err != nil {
				return err
			}
			if err := s.notifyAccount(ctx, subject, item.Subject, "Your account recovery was denied", []string{
				"An approver denied the recovery of your account (" + describeAction(r.Action) + ").",
				"If you still need help, contact your help desk.",
			}, meta); err != nil {
				return err
			}
		} else {
			if err := s.reportApproval(ctx, subject, item.Subject, r, p.Account, item.Roles, meta); err != nil {
				return err
			}
			if err := s.advanceSeen(ctx, subject, r, meta, nil, &after); err != nil {
				return err
			}
		}
		req, err := s.requirementOf(r)
		if err != nil {
			return err
		}
		done = approvalItemOf(r, item.Subject, p.Account, item.Roles, req, after)
		return nil
	})
	if err != nil && recourse.ErrorCode(err) == recourse.EINTERNAL {
		return nil, internal("vote", err)
	}
	if err != nil {
		return nil, err
	}
	return done, nil
}

// UpdateRecoveryChange replaces what a request would change (for example a
// corrected new phone number). The change digest moves, so every earlier
// vote is void and the request goes back to collecting.
func (s *Service) UpdateRecoveryChange(ctx context.Context, id string, change map[string]string, meta Meta) error {
	return internal("update change", s.store.InTx(ctx, func(tx recourse.Tx) error {
		r, err := tx.Recovery(ctx, id)
		if err != nil {
			return err
		}
		if !r.State.Open() || r.State == recourse.RecoveryReady {
			return errRecoveryClosed
		}
		old := r.ChangeDigest
		for k, v := range change {
			if k == "action" || k == "account" {
				continue
			}
			r.Change[k] = v
		}
		r.ChangeDigest = changeDigest(r.Change)
		if r.ChangeDigest == old {
			return nil
		}
		r.State, r.CoolingUntil, r.UpdatedAt = recourse.RecoveryCollecting, nil, s.now()
		if err := tx.UpdateRecovery(ctx, r); err != nil {
			return err
		}
		if err := s.recordAudit(ctx, tx, recourse.AuditEvent{Action: recourse.ActionRecoveryTransition, Outcome: recourse.OutcomeSuccess,
			SubjectID: r.AccountID, Reason: "change edited; earlier votes are void",
			Before: map[string]string{"change_digest": old}, After: map[string]string{"change_digest": r.ChangeDigest},
			Attributes: map[string]string{"request": r.ID}}, meta); err != nil {
			return err
		}
		return s.advance(ctx, tx, r, meta)
	}))
}
