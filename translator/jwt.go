package translator

import (
	"encoding/json"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/apis/apiserver"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	apiservervalidation "k8s.io/apiserver/pkg/apis/apiserver/validation"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
)

// spec.authentication.jwt holds kube-apiserver's own JWTAuthenticator type
// (apiserver.config.k8s.io/v1), so a user pastes the jwt list of an
// AuthenticationConfiguration. It is checked with kube-apiserver's own
// conversion (v1 to the internal type) and validation, which compiles
// every CEL expression: a config kube-apiserver would refuse at startup is
// refused here, with the same messages, before the request service ever
// builds an authenticator from it.

// jwtCompiler is one CEL compiler for every translation: building its
// environment is expensive, and it holds no per-config state.
var jwtCompiler = sync.OnceValue(authenticationcel.NewDefaultCompiler)

// validateJWT checks spec.authentication.jwt as kube-apiserver checks the
// jwt list of its AuthenticationConfiguration (unique issuer and discovery
// URLs, at most 64, each authenticator valid), with paths under fld.
// egressSelectorType is refused: the gateway has no egress selector, and
// kube-apiserver's authenticator cannot be built with one it lacks.
func validateJWT(jwt []apiserverv1.JWTAuthenticator, fld *field.Path) field.ErrorList {
	if len(jwt) == 0 {
		return nil
	}
	cfg := &apiserver.AuthenticationConfiguration{JWT: make([]apiserver.JWTAuthenticator, len(jwt))}
	var errs field.ErrorList
	for i := range jwt {
		if err := apiserverv1.Convert_v1_JWTAuthenticator_To_apiserver_JWTAuthenticator(&jwt[i], &cfg.JWT[i], nil); err != nil {
			errs = append(errs, field.Invalid(fld.Index(i), "", err.Error()))
			return errs // unreachable with the generated conversion, which cannot fail
		}
	}
	// kube-apiserver's paths start at "jwt"; rebase them onto fld.
	for _, e := range apiservervalidation.ValidateAuthenticationConfiguration(jwtCompiler(), cfg, nil) {
		if rest, ok := strings.CutPrefix(e.Field, "jwt"); ok {
			e.Field = fld.String() + rest
		}
		errs = append(errs, e)
	}
	for i := range jwt {
		if et := jwt[i].Issuer.EgressSelectorType; et != "" {
			errs = append(errs, field.NotSupported(fld.Index(i).Child("issuer", "egressSelectorType"), et, []string{""}))
		}
	}
	return errs
}

// buildJWT encodes each validated authenticator for the policy table, in
// spec order (kube-apiserver tries them in that order). Encoding a v1
// struct cannot fail; an error would be a bug, reported as a config error
// by the caller rather than a panic.
func buildJWT(jwt []apiserverv1.JWTAuthenticator) ([]json.RawMessage, error) {
	if len(jwt) == 0 {
		return nil, nil
	}
	out := make([]json.RawMessage, 0, len(jwt))
	for i := range jwt {
		b, err := json.Marshal(&jwt[i])
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
