package v1alpha1

// SecretRefs are every Secret the spec references, in field order: the one
// list the control plane reads (the Kubernetes source watches and reads
// only these) and keeps (the last good version of each). A new
// SecretReference field must be added here; TestSecretRefsNamesEveryField
// fails until it is.
func (s *UpstreamClusterSpec) SecretRefs() []SecretReference {
	out := []SecretReference{s.ClientConfig.SecretRef, s.SecureServing.SecretRef}
	if r := s.SecureServing.ClientCASecretRef; r != nil {
		out = append(out, *r)
	}
	if r := s.Authentication.X509.Revocation.CRLSecretRef; r != nil {
		out = append(out, *r)
	}
	if rh := s.Authentication.RequestHeader; rh != nil {
		out = append(out, rh.ClientCASecretRef)
	}
	return out
}
