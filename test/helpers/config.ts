import { ConfigError, loadConfig } from '../../src/config';

/**
 * The error loadConfig throws for an environment, or fails the test when it accepts it (naming
 * the variables only: their values may be secrets).
 */
export function configErrorOf(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(Object.keys(env))}`);
}
