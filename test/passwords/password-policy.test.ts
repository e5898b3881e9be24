import {
  checkPasswordPolicy,
  commonPasswordList,
  foldedPasswordSet,
  isCommonPassword,
  type PasswordContext,
} from '../../src/passwords/password-policy';

const MIN_LENGTH = 8;
const ACCOUNT: PasswordContext = { email: 'alice@example.test', username: 'alice_w' };

/** The messages of checkPasswordPolicy, so each case shows which rule it breaks. */
const problemsOf = (password: string, context: PasswordContext = ACCOUNT) =>
  checkPasswordPolicy(password, MIN_LENGTH, context).map((problem) => problem.message);

describe('password policy', () => {
  it('when the cases below use "password1", then it is on the shipped list', () => {
    expect(commonPasswordList().has('password1')).toBe(true);
  });

  describe('common-password list: case, surrounding spaces and runs of spaces do not matter', () => {
    it.each([
      ['with a leading space', ' password1'],
      ['with a trailing space', 'password1 '],
      ['with spaces and a tab around it', '  password1\t'],
      ['in capitals', 'PASSWORD1'],
      ['in mixed case with spaces', ' PassWord1  '],
      ['in fullwidth letters (NFKC)', 'ｐａｓｓｗｏｒｄ１'],
    ])('when the password is a listed one %s, then it is too common', (_case, password) => {
      expect(problemsOf(password)).toEqual(['is too common']);
    });

    it.each([
      ['the listed text', 'pass word1'],
      ['a run of spaces inside', 'pass  word1'],
      ['a tab and spaces inside', 'pass \t word1'],
      ['spaces around and capitals', '  PASS   Word1 '],
      ['a no-break space inside (NFKC makes it a space)', 'pass\u00a0word1'],
    ])('when "pass word1" is listed and the password is %s, then it is common', (_case, password) => {
      expect(isCommonPassword(password, foldedPasswordSet(['pass word1']))).toBe(true);
    });

    it.each([
      ['the spaces removed', 'password1'],
      ['other words', 'pass word2'],
    ])('when "pass word1" is listed and the password has %s, then it is not common', (_case, password) => {
      expect(isCommonPassword(password, foldedPasswordSet(['pass word1']))).toBe(false);
    });

    it('when a list entry has capitals or extra spaces, then it is folded like the password', () => {
      expect(isCommonPassword('pass word1', foldedPasswordSet(['  Pass   WORD1 ']))).toBe(true);
    });
  });

  describe('not the email or username, folded the same way', () => {
    it.each<[string, string, string]>([
      ['the email with spaces around', ` ${ACCOUNT.email!} `, 'must not be the email address'],
      ['the email in capitals', ACCOUNT.email!.toUpperCase(), 'must not be the email address'],
      ['the username with a trailing space', `${ACCOUNT.username!} `, 'must not be the username'],
      ['the username in capitals with spaces', `  ${ACCOUNT.username!.toUpperCase()}`, 'must not be the username'],
      ['the username in fullwidth letters (NFKC)', 'ａｌｉｃｅ＿ｗ', 'must not be the username'],
    ])('when the password is %s, then it is refused', (_case, password, message) => {
      expect(problemsOf(password)).toContain(message);
    });
  });

  describe('length and bytes count the NFKC form', () => {
    it.each([
      ['4 decomposed letters (8 code points typed, 4 after NFKC)', 'e\u0301'.repeat(4), 'must be at least 8 characters'],
      ['73 ASCII bytes', 'k9#'.repeat(24) + 'z', 'must be at most 72 bytes in UTF-8'],
      [
        '65 bytes typed that NFKC makes 74 ("㌀" is 3 bytes, "アパート" 12)',
        'k9#'.repeat(20) + 'zz' + '㌀',
        'must be at most 72 bytes in UTF-8',
      ],
    ])('when the password is %s, then it is refused', (_case, password, message) => {
      expect(problemsOf(password)).toEqual([message]);
    });

    it.each([
      ['exactly 72 ASCII bytes', 'k9#'.repeat(24)],
      ['108 bytes typed decomposed that NFKC makes 72', 'é'.repeat(36).normalize('NFD')],
      ['8 composed letters typed decomposed', 'éèêëàâäç'.normalize('NFD')],
      ['spaces inside and around (kept; only the list check folds them)', '  four words with spaces  '],
    ])('when the password is %s, then it is accepted', (_case, password) => {
      expect(problemsOf(password)).toEqual([]);
    });
  });
});
