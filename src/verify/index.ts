export { createVerifier, KeysUnavailableError, VerifyError } from './verifier';
export type { AccessTokenClaims, AuthLocals, Verifier, VerifierOptions, VerifyErrorCode } from './verifier';
