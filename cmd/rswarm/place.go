package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rswarm/rswarm/placement"
)

func init() { addCommand(newPlaceCmd()) }

// newPlaceCmd is `rswarm place`: the original's pure best_fit/first_fit as a
// filter, JSON in, JSON out.
func newPlaceCmd() *cobra.Command {
	var strategy string
	cmd := &cobra.Command{
		Use:   "place",
		Short: "Place single requests against free core counts, as the original's best_fit/first_fit",
		Long: `Reads {"free":[6,8,9],"requests":[4,5,3]} on stdin: the free cores of each
worker and the cores of each request. Places each request in turn, alone,
against the free counts as they shrink, and prints [[i,w],...]: request i went
to worker w, or w = -1 when nothing fits.

  best-fit              the worker with the smallest leftover, ties to the lowest index
  first-fit             the lowest-index worker that fits
  *-decreasing          the same, largest requests first (stable); pairs keep
                        the input position of each request, in placement order

Bad input is reported on stderr with exit code 2.`,
		Example: `  echo '{"free":[6,8,9],"requests":[4,5,3]}' | rswarm place --strategy best-fit
  [[0,0],[1,1],[2,1]]`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := place(cmd.InOrStdin(), strategy)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("place: %w", err)}
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), out)
			return err
		},
	}
	cmd.Flags().StringVar(&strategy, "strategy", placement.BestFit,
		"first-fit, best-fit, first-fit-decreasing or best-fit-decreasing")
	return cmd
}

// placeInput is what `rswarm place` reads. Pointers tell a missing field
// from an empty list.
type placeInput struct {
	Free     *[]int `json:"free"`
	Requests *[]int `json:"requests"`
}

// place reads one placeInput from r and returns the placement as compact JSON.
func place(r io.Reader, strategy string) (string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("reading stdin: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return "", errors.New(`no input: expected {"free":[...],"requests":[...]} on stdin`)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in placeInput
	if err := dec.Decode(&in); err != nil {
		return "", fmt.Errorf(`reading {"free":[...],"requests":[...]}: %s`, describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("unexpected data after the JSON object")
	}
	switch {
	case in.Free == nil:
		return "", errors.New(`missing "free": the free core count of each worker, e.g. "free":[6,8,9]`)
	case in.Requests == nil:
		return "", errors.New(`missing "requests": the cores each request asks for, e.g. "requests":[4,5,3]`)
	}
	pairs, err := placement.PlaceSequential(strategy, *in.Free, *in.Requests)
	if err != nil {
		return "", err
	}
	out, err := json.Marshal(pairs)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// describeJSONError turns encoding/json's errors into words about the input.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return fmt.Sprintf("the input must be a JSON object (found %s)", typeErr.Value)
	case errors.As(err, &typeErr):
		return fmt.Sprintf("%q must be a list of whole numbers (found %s at byte %d)", typeErr.Field, typeErr.Value, typeErr.Offset)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends too early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + `; only "free" and "requests" are read`
	}
	return err.Error()
}
