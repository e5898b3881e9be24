import { parseBearer } from '../../src/tokens/bearer';

// The one reader of `Authorization: Bearer …` (RFC 6750 section 2.1), shared with gatehouse/verify.
describe('parseBearer', () => {
  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['a blank header', '   '],
  ])('when there is %s, then it is TOKEN_MISSING', (_name, header) => {
    expect(parseBearer(header)).toEqual({ ok: false, code: 'TOKEN_MISSING' });
  });

  it.each([
    ['another scheme', 'Basic dXNlcjpwYXNz'],
    ['the scheme alone', 'Bearer'],
    ['the scheme and a space', 'Bearer '],
    ['an empty signature segment', 'Bearer aaa.bbb.'],
    ['two segments', 'Bearer aaa.bbb'],
    ['four segments', 'Bearer aaa.bbb.ccc.ddd'],
    ['something after the token', 'Bearer aaa.bbb.ccc extra'],
    ['standard base64 characters', 'Bearer aa+a.bbb.cc/c'],
    ['a tab instead of a space', 'Bearer\taaa.bbb.ccc'],
    ['no space after the scheme', 'Beareraaa.bbb.ccc'],
  ])('when the header has %s, then it is TOKEN_INVALID', (_name, header) => {
    expect(parseBearer(header)).toEqual({ ok: false, code: 'TOKEN_INVALID' });
  });

  it.each([
    ['the usual spelling', 'Bearer aaa.bbb.ccc'],
    ['the scheme in lower case', 'bearer aaa.bbb.ccc'],
    ['several spaces after the scheme', 'Bearer   aaa.bbb.ccc'],
    ['surrounding whitespace', '  Bearer aaa.bbb.ccc  '],
  ])('when the header has %s, then the token is read', (_name, header) => {
    expect(parseBearer(header)).toEqual({ ok: true, token: 'aaa.bbb.ccc' });
  });
});
