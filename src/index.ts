// wsgate as a library: load a config and run a gateway in-process.
export { ConfigError, loadConfigFile, loadConfigText } from './config/load';
export type { Config } from './config/model';
export { Gateway, type BoundListener, type TunnelRecord } from './gateway';
export { createLogger, type Logger } from './observe/log';
