package main

import (
	"encoding/base64"
	"fmt"
	"io"
)

// cmdKeygen prints a new 256-bit master key for RECOURSE_MASTER_KEY.
func cmdKeygen(stdout io.Writer) error {
	k, err := randomKey()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k))
	return err
}
