package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/proxy/scram"
)

func (e *env) hashPasswordCommand() *cobra.Command {
	var iterations int
	cmd := &cobra.Command{
		Use:   "hash-password",
		Short: "Turn a password read from stdin into a SCRAM-SHA-256 verifier",
		Long: "hash-password reads one line from standard input and prints its\n" +
			"SCRAM-SHA-256 verifier, to put under proxy.users instead of the password:\n\n" +
			"  printf '%s' 'the password' | pgtide proxy hash-password",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && line == "" {
				return usageErrorf("no password on standard input")
			}
			password := strings.TrimRight(line, "\r\n")
			if password == "" {
				return usageErrorf("the password is empty")
			}
			v, err := scram.NewVerifier(password, iterations)
			if err != nil {
				return fmt.Errorf("hash password: %w", err)
			}
			fmt.Fprintln(e.stdout, v.String())
			return nil
		},
	}
	cmd.Flags().IntVar(&iterations, "iterations", scram.DefaultIterations, "PBKDF2 iterations")
	return cmd
}
